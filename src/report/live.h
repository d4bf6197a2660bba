// The live page's data (`proxy --ui`): a sink that keeps the newest N connections (--ui-keep) and
// says which of them changed since the page server last asked. It runs on the trace writer thread
// and never waits on a browser: the page server only takes what is there (one short lock), and a
// slow browser loses updates at the page server, never here or in the files.
#pragma once
#include <cstddef>
#include <mutex>
#include <set>
#include <string>

#include "report/model.h"
#include "trace/event.h"

namespace tlstrace::report {

class LiveSink : public trace::Sink {
 public:
  explicit LiveSink(std::size_t keep) : model_(keep) {}
  void write(const trace::Event& e) override;

  // From the page server's thread:
  [[nodiscard]] trace::Json snapshot() const;  // every kept connection (Model::toJson)
  // The connections changed since the previous call, as one update ({"conns":[...],"pool":[...]}
  // as JSON text); empty when none changed.
  [[nodiscard]] std::string takeUpdates();

 private:
  mutable std::mutex mu_;
  Model model_;
  std::set<std::uint64_t> dirty_;
};

}  // namespace tlstrace::report

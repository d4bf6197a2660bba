// The live page's data (`proxy --ui`): a sink that keeps the newest N connections (--ui-keep) and
// says which of them changed since the page server last asked. It runs on the trace writer thread
// and never waits on a browser: the page server only takes what is there (one short lock), and a
// slow browser loses updates at the page server, never here or in the files.
//
// What goes to the browser is cheap to make: the stream carries each changed connection's overview
// row (Model::summaryJson, a few hundred bytes), and a connection's events (its ladder, decoded
// fields, key exchange, chain) are serialised only when the page opens it (detail(), GET /conn/ID),
// as mitmweb does with its flows.
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
  // Every kept connection's overview row (Model::toJson(Detail::Summary), with "below": ids at or
  // below it are no longer kept).
  [[nodiscard]] trace::Json snapshot() const;
  // The rows of the connections changed since the previous call, as one update
  // ({"conns":[...],"below":N} as JSON text); empty when none changed. With `wanted` false (no
  // browser follows the stream) the changes are only forgotten, nothing is serialised.
  [[nodiscard]] std::string takeUpdates(bool wanted = true);
  // One connection whole (Model::updateJson) as JSON text; empty when it is not (or no longer) kept.
  [[nodiscard]] std::string detail(std::uint64_t id) const;

 private:
  mutable std::mutex mu_;
  Model model_;
  std::set<std::uint64_t> dirty_;
};

}  // namespace tlstrace::report

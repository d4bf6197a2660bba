// `proxy --ui ADDR:PORT`: the report page served live (Boost.Beast, one thread of its own). GET /
// is the page with the kept connections' rows; GET /events streams changes as server-sent events
// (`conn`: the changed connections' rows; `stats`: updates dropped for this browser); GET /conn/ID
// is one connection whole (its events), fetched when the page opens it. A
// browser that does not read fast enough loses updates (counted and shown), never slowing the
// proxy: the trace writer only fills report::LiveSink.
#pragma once
#include <memory>
#include <string>

#include "config/config.h"
#include "report/live.h"

namespace tlstrace::net {

class UiServer {
 public:
  // allow_remote: serve non-loopback browsers and any Host header (off: loopback only, and a Host
  // that names loopback, so that a web page cannot reach the proxy's page by DNS rebinding).
  UiServer(config::HostPort addr, bool allow_remote, std::shared_ptr<report::LiveSink> live);
  ~UiServer();  // stops
  UiServer(const UiServer&) = delete;
  UiServer& operator=(const UiServer&) = delete;

  // Binds and starts serving; returns the bound "ip:port", or "" with `error` set.
  [[nodiscard]] std::string start(std::string& error);
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tlstrace::net

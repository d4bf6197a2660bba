// What every connection shares: configuration, trace, forging and the two TLS contexts. Built by
// the composition root (app/), passed in, never global.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "config/address.h"
#include "config/config.h"
#include "session/deps.h"

namespace tlstrace::net {

struct Services : session::Deps {
  std::function<void(const std::string&)> warn;  // operator-facing warnings (the app's log)
  bool own_fd_tables = false;                    // io threads take descriptor tables of their own (see below)
  std::vector<config::IpAddress> own_addresses;  // the host's interface addresses at start (exposure rules)
};

// Can a thread of this process take a descriptor table of its own (unshare(CLONE_FILES))? Then
// each io thread keeps its connections' sockets in its own table and the open-file limit, which
// applies per table, holds that many connections per thread instead of per process. Container
// seccomp profiles may forbid it; the threads then share the process's table.
[[nodiscard]] bool threadsCanOwnFdTables();

// The addresses of this host's interfaces (getifaddrs(3)): the proxy's own, for the exposure
// rules (config::forbiddenTarget).
[[nodiscard]] std::vector<config::IpAddress> interfaceAddresses();

// Runs the proxy until SIGINT/SIGTERM. `on_listening` gets the bound address once accepting.
// Returns the process exit status. Throws on start-up errors (bind).
int runProxy(const Services& services, const std::function<void(const std::string&)>& on_listening);

}  // namespace tlstrace::net

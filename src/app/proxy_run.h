// `tlstrace proxy`: the proxy run from its configuration to its exit status (docs/cli.md): the CA
// and TLS contexts, the outputs, the services the connections share, the listener, and the end
// of the run (outputs flushed within a bound, losses reported, policy verdicts).
#pragma once
#include <functional>
#include <string>

#include "config/config.h"

namespace tlstrace::app {

// What the binary was built with (main.cpp knows; the library does not).
struct ProxyBuild {
  std::string version;  // "0.1.0"
  std::string build;    // the libraries it was built with
  // Gives the calling thread's allocator cache back (jemalloc's thread.tcache.flush), or empty.
  std::function<void()> release_thread_cache;
};

[[nodiscard]] int runProxyCommand(const config::ProxyConfig& options, const ProxyBuild& build);

}  // namespace tlstrace::app

// `tlstrace proxy`: the proxy run from its configuration to its exit status (docs/cli.md): the CA
// and TLS contexts, the outputs, the services the connections share, the listener, and the end
// of the run (outputs flushed within a bound, losses reported, policy verdicts).
#pragma once
#include <string>

#include "config/config.h"

namespace tlstrace::app {

struct ProxyBanner {
  std::string version;  // "0.1.0"
  std::string build;    // the libraries it was built with
};

[[nodiscard]] int runProxyCommand(const config::ProxyConfig& options, const ProxyBanner& banner);

}  // namespace tlstrace::app

// What every connection shares: configuration, trace, forging and the two TLS contexts. Built by
// the composition root (app/), passed in, never global.
#pragma once
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config/address.h"
#include "config/config.h"
#include "net/proxy_request.h"
#include "net/work_pool.h"
#include "session/deps.h"

namespace tlstrace::net {

class TcpStateWatch;  // net/tcp_state_watch.h

// A name lookup done on the resolver pool (getaddrinfo, as Asio's resolver asks it).
struct Resolved {
  boost::system::error_code ec;
  boost::asio::ip::tcp::resolver::results_type results;
};
using ResolverPool = WorkPool<Resolved>;
[[nodiscard]] Resolved resolveBlocking(const std::string& host, std::uint16_t port);

// A safe-prime test done on the prime pool: the verdict and how long it took.
struct PrimeVerdict {
  bool safe = false;
  double ms = 0;
};
using PrimePool = WorkPool<PrimeVerdict>;
// Stops the proxy as SIGTERM does, from any thread (an output failed under --on-output-error
// stop). Asked before the proxy runs, it stops as soon as it starts.
class StopRequest {
 public:
  // Under the lock, so that no call outlives detach(); `stop_` only posts.
  void request() {
    std::lock_guard<std::mutex> lock(mu_);
    requested_ = true;
    if (stop_) stop_();
  }
  void attach(std::function<void()> stop) {  // runProxy, while it runs
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = std::move(stop);
    if (requested_) stop_();
  }
  void detach() {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = nullptr;
  }

 private:
  std::mutex mu_;
  std::function<void()> stop_;
  bool requested_ = false;
};

struct Services : session::Deps {
  std::function<void(const std::string&)> warn;  // operator-facing warnings (the app's log)
  bool own_fd_tables = false;                    // io threads take descriptor tables of their own (see below)
  std::function<void()> reopen;                  // SIGHUP: reopen the output files (log rotation)
  StopRequest* stop = nullptr;                   // stop from outside, as SIGTERM does
  std::vector<config::IpAddress> own_addresses;  // the host's interface addresses at start (exposure rules)
  // Off-io-thread work (runProxy makes both; they live no longer than the io_contexts).
  ResolverPool* resolver = nullptr;
  PrimePool* prime_pool = nullptr;
  CaPage ca_page;                       // explicit mode: served to a plain GET / (the CA certificate, like mitm.it)
  TcpStateWatch* tcp_states = nullptr;  // --tcp-states, when the kernel allows it
};

// Can a thread of this process take a descriptor table of its own (unshare(CLONE_FILES))? Then
// each io thread keeps its connections' sockets in its own table and the open-file limit, which
// applies per table, holds that many connections per thread instead of per process. Container
// seccomp profiles may forbid it; the threads then share the process's table.
[[nodiscard]] bool threadsCanOwnFdTables();

// The addresses of this host's interfaces (getifaddrs(3)): the proxy's own, for the exposure
// rules (config::forbiddenTarget).
[[nodiscard]] std::vector<config::IpAddress> interfaceAddresses();

// Runs the proxy until SIGINT/SIGTERM/SIGQUIT (or Services::stop); SIGHUP calls Services::reopen.
// `on_listening` gets the bound address once accepting.
// Returns the process exit status. Throws on start-up errors (bind).
int runProxy(const Services& services, const std::function<void(const std::string&)>& on_listening);

}  // namespace tlstrace::net

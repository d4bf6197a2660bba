// The kernel's own TCP facts, asked without privileges: the client's SYN as received
// (TCP_SAVE_SYN / TCP_SAVED_SYN), TCP_INFO of a leg's socket, and the listener's health (its
// accept queue from sock_diag, the namespace's ListenOverflows/ListenDrops from /proc/net/netstat,
// net.core.somaxconn and net.ipv4.tcp_max_syn_backlog). Only at accept, establishment, close and
// on a slow timer: never per read.
#pragma once
#include <sys/socket.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "trace/events.h"

namespace tlstrace::trace {
class Tracer;
}

namespace tlstrace::net {

// Asks the listening socket to keep each connection's SYN until it is read (Linux 4.3+).
bool saveSyns(int listen_fd);
// The SYN saved for an accepted socket (IP header first), read once: the kernel frees it then.
// Empty when none was saved.
[[nodiscard]] std::vector<std::uint8_t> savedSyn(int fd);
// TCP_INFO of a connected socket as tcp.info (`at`: "established" or "close"); nullopt when the
// socket has none (closed).
[[nodiscard]] std::optional<trace::ev::TcpInfo> tcpInfo(int fd, std::string_view at);
[[nodiscard]] inline std::optional<trace::ev::TcpInfo> tcpInfo(boost::asio::ip::tcp::socket& s, std::string_view at) {
  return tcpInfo(s.is_open() ? s.native_handle() : -1, at);
}

// Whether the kernel holds a TIME_WAIT socket with this 4-tuple (the socket's own address and its
// peer's, as getsockname and getpeername give them), asked of sock_diag's exact lookup: nullopt
// when the question could not be asked.
[[nodiscard]] std::optional<bool> timeWaitHeld(const sockaddr_storage& local, const sockaddr_storage& peer);

// The listener's health as tcp.listen events (conn 0): once at start, then whenever the
// namespace's ListenOverflows or ListenDrops grew (checked every `period`), and at stop if they
// grew since the last event. Runs on one io_context; the counters are the network namespace's
// (the kernel counts no more finely), the accept queue this listener's.
class ListenMonitor {
 public:
  ListenMonitor(boost::asio::io_context& ctx, trace::Tracer& tracer);
  void start(int listen_fd, const boost::asio::ip::tcp::endpoint& ep, std::size_t backlog);
  void stop();  // on the io_context's thread

 private:
  void arm();
  void check(const char* reason, bool always);

  boost::asio::steady_timer timer_;
  trace::Tracer& tracer_;
  int fd_ = -1;
  std::string listen_;
  trace::ev::TcpListen last_;
  std::uint64_t base_overflows_ = 0, base_drops_ = 0;
  bool running_ = false;
};

}  // namespace tlstrace::net

// --tcp-states: the kernel's own TCP state transitions of the proxy's sockets (the
// sock:inet_sock_set_state tracepoint, through the small eBPF program bpf/tcp_state.bpf.c), as
// tcp.state events. The kernel filters to the proxy's sockets; a thread of its own reads the ring
// buffer and matches each transition to a leg by its 4-tuple. Transitions that come before the
// proxy knows the leg (the handshake: before accept() or the connect completion) wait briefly;
// those after the connection is gone (TIME_WAIT) still find it: a leg is kept for a while past
// close, in a bounded table.
#pragma once
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <memory>
#include <string>

#include "trace/event.h"

namespace tlstrace::net {

class TcpStateWatch {
 public:
  // Loads and attaches the program for this process, or returns null with the reason in `why`
  // (built without eBPF, kernel without BTF, no CAP_BPF/CAP_PERFMON).
  [[nodiscard]] static std::unique_ptr<TcpStateWatch> start(trace::Tracer& tracer, std::string& why);
  virtual ~TcpStateWatch() = default;
  // A listener's local port: its child sockets are born in softirq context, under no task of ours.
  virtual void listenPort(std::uint16_t port) = 0;
  // A leg's socket, once its 4-tuple is known (io threads).
  virtual void watch(std::uint64_t conn, trace::Leg leg, const boost::asio::ip::tcp::endpoint& local,
                     const boost::asio::ip::tcp::endpoint& remote) = 0;
  // The connection is over: its legs are kept a while longer for the transitions still to come.
  virtual void release(std::uint64_t conn) = 0;
};

}  // namespace tlstrace::net

// One proxied connection on the wire: the client socket, the upstream socket, the timers, and the
// session (session/proxy_session.h) that decides everything. This class only turns socket and
// timer completions into session inputs and carries the session's actions out. Everything runs on
// one thread (the io_context's), so no locks.
#pragma once
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "config/address.h"
#include "net/services.h"
#include "session/proxy_session.h"
#include "trace/tap.h"
#include "wire/proxy_hop.h"

namespace tlstrace::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// An Asio address as the exposure rules (config/address.h) classify it.
[[nodiscard]] inline config::IpAddress toIp(const asio::ip::address& a) {
  if (a.is_v4()) return *config::ipFromBytes(a.to_v4().to_bytes());
  return *config::ipFromBytes(a.to_v6().to_bytes());
}

// A connected socket's peer (`remote`) or own address as "ip:port" ("[v6]:port"); "?" when unknown.
[[nodiscard]] std::string endpointText(const tcp::socket& s, bool remote);
[[nodiscard]] std::string endpointText(const tcp::endpoint& ep);
// Reads and drops what is already there before a close (bounded); `each` sees each chunk. The bytes.
std::size_t discardUnread(tcp::socket& s, const std::function<void(std::span<const std::uint8_t>)>& each = {});
// The same as the trace's endpoint (the capture filter, the pcapng's flows).
[[nodiscard]] trace::Endpoint toEndpoint(const tcp::endpoint& ep);
// Both legs' sockets before use: no Nagle delay (small handshake flights would wait for ACKs);
// non-blocking, as reads are wait-readable + read_some.
void prepareSocket(tcp::socket& s);

class Connection : public std::enable_shared_from_this<Connection>, session::ProxySession::SocketFacts {
 public:
  Connection(tcp::socket client, const Services& svc, const session::FrontEnd& front, std::uint64_t id,
             std::function<void(std::uint64_t)> on_done);
  void start();
  // A probe (session/probe.h): no client socket (`client` is an unopened socket of the executor).
  void startProbe(const session::ProbeSpec& spec);
  // Keeps a front end made for this connection alone (transparent mode's original destination)
  // alive as long as the session that refers to it.
  void keepFrontEnd(std::unique_ptr<session::FrontEnd> f) { own_front_ = std::move(f); }
  // Shutdown: close both legs politely (close_notify, FIN), then finish.
  void stop(const std::string& why);

 private:
  // session::ProxySession::SocketFacts: what the session asks of the sockets as it ends a leg.
  std::optional<trace::ev::TcpInfo> tcpInfoAtClose(session::Leg leg) override;
  session::ProxySession::PeerEnd peerEnd(session::Leg leg) override;

  struct Socket {
    explicit Socket(tcp::socket s) : sock(std::move(s)) {}
    tcp::socket sock;
    bool open = false;
    bool dead = false;                        // aborted: no FIN of ours in the capture
    bool peer_reset = false;                  // the peer's RST ended it: ours adds nothing
    bool shut = false;                        // our FIN went out (shutdown)
    bool peer_fin_before_ours = false;        // its FIN was in when we shut down (in::Closed, peerEnd)
    bool reset_taken = false;                 // peerEnd() took its reset: the end of stream that follows is it
    std::span<const std::uint8_t> in_flight;  // the bytes of the write under way

    // TCP_INFO taken before an abort closed it (tcp.info at close). Behind a pointer: rare, and
    // the Connection's size decides its allocation class (the per-connection memory).
    std::unique_ptr<trace::ev::TcpInfo> close_info;
  };
  // The tcp category is traced: ask the kernel (net/tcp_probe.h).
  [[nodiscard]] bool tcpFacts() const { return svc_.tracer && svc_.tracer->enabled(trace::kTcp); }

  // Feeds one input to the session and carries out what it asks, then writes out the burst's
  // trace and capture.
  void run(session::Input input);
  void carryOut(const std::vector<session::Action>& actions);
  void execute(const session::Action& a);
  void read(session::Leg leg);
  void send(session::Leg leg, std::span<const std::uint8_t> bytes);
  void connect(const session::act::Connect& c);
  void resolve(const std::string& host, std::uint16_t port);
  void resolved(std::uint64_t gen, const Resolved& r);
  void connectTo(tcp::resolver::results_type results);
  void watchThenConnect(tcp::resolver::results_type results, std::shared_ptr<bool> timed_out);
  void startConnect(tcp::resolver::results_type results, std::shared_ptr<bool> timed_out);
  void connectEach(std::shared_ptr<const tcp::resolver::results_type> results, std::size_t i,
                   std::shared_ptr<bool> timed_out, boost::system::error_code last);
  void armConnectTimer(double seconds, std::function<void()> on_expiry);
  void disarmConnectTimer();
  void testPrime(const session::act::TestPrime& t);
  void later(session::Input input);
  [[nodiscard]] std::optional<std::string> screenTargets(tcp::resolver::results_type& results,
                                                         bool client_chosen) const;
  void armTimer(session::SteadyClock::time_point at);
  void finish();
  Socket& sock(session::Leg leg) { return leg == session::Leg::Upstream ? upstream_ : client_; }

  // --upstream-proxy (net/upstream_hop.cpp): once the TCP connection to the proxy is up, its
  // handshake (wire/proxy_hop.h) opens the tunnel; in::Connected or in::ConnectFailed follows.
  [[nodiscard]] bool viaProxy(const session::act::Connect& c);
  // `err`: the connect's errno, for a SOCKS client's reply (not through a proxy: that one is the proxy's).
  [[nodiscard]] session::in::ConnectFailed connectFailure(int status, std::string why, int err = 0) const;
  void startHop(double connect_ms, std::string peer);
  void hopSend(std::vector<std::uint8_t> bytes);
  void hopRead();
  void hopStep(wire::ProxyHop::Step step);
  void hopFailed(int code, std::string why, std::string hop, int status, std::string reply);  // code: 502/504
  void deliverTunnelRest();

  // Capture (--pcap): inbound = received by the proxy on that leg. The client leg's initiator is
  // the client; the upstream leg's is the proxy.
  void tapOpen(session::Leg leg);
  void tapData(session::Leg leg, bool inbound, std::span<const std::uint8_t> bytes);
  void tapFin(session::Leg leg, bool inbound);
  void tapRst(session::Leg leg, bool inbound);

  const Services& svc_;
  std::unique_ptr<session::FrontEnd> own_front_;  // destroyed after session_ (declared before it)
  std::uint64_t id_;
  std::function<void(std::uint64_t)> on_done_;
  Socket client_;
  Socket upstream_;
  asio::steady_timer watchdog_;
  asio::steady_timer connect_timer_;
  session::ProxySession session_;
  std::uint64_t timer_gen_ = 0;
  std::uint64_t connect_gen_ = 0;  // of the connect timer's current arming (lookup, then connect)
  session::SteadyClock::time_point connect_started_{};
  double connect_timeout_s_ = 0;
  std::vector<trace::Endpoint> watched_;  // --capture: destinations asked of the capture's filter
  // The proxy's handshake under way, with what it needs (in one allocation of its own: most
  // connections go direct, and every member here counts in each connection's memory).
  struct Hop {
    Hop(wire::ProxyHop::Spec spec, std::string proxy_url) : machine(std::move(spec)), url(std::move(proxy_url)) {}
    wire::ProxyHop machine;
    std::string url;          // the proxy's URL without credentials (for the why)
    double connect_ms = 0;    // the TCP connect to the proxy
    std::string peer, local;  // its ends, as connected (a proxy that refuses may reset it at once)
    bool socks = false;       // SOCKS5, not HTTP CONNECT
    bool peer_reset = false;  // the proxy reset the connection (tcp.close)
    std::uint64_t bytes_in = 0, bytes_out = 0;
    session::SteadyClock::time_point started{};
  };
  std::unique_ptr<Hop> hop_;
  std::vector<std::uint8_t> tunnel_rest_;  // the tunnel's first bytes, read with the proxy's reply
  bool client_chosen_ = false;
  bool resolving_ = false;
  bool finished_ = false;
};

}  // namespace tlstrace::net

#include "net/connection.h"

#include <netinet/tcp.h>
#include <sys/socket.h>

#include <array>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <optional>
#include <utility>
#include <vector>

#include "analysis/kex.h"
#include "net/capture.h"
#include "net/tcp_probe.h"
#include "net/tcp_state_watch.h"
#include "trace/tap.h"
#include "wire/byte_reader.h"

namespace tlstrace::net {

namespace werr = boost::asio::error;
namespace in = session::in;
namespace act = session::act;
using session::Leg;

namespace {

// One read buffer per io thread (handlers of one thread never overlap); the session reads the
// bytes in place during the call and copies only what it keeps.
std::span<std::uint8_t> threadReadBuffer() {
  static thread_local std::array<std::uint8_t, 64 * 1024> buf;
  return buf;
}

}  // namespace

std::string endpointText(const tcp::socket& s, bool remote) {
  boost::system::error_code ec;
  auto ep = remote ? s.remote_endpoint(ec) : s.local_endpoint(ec);
  if (ec) return "?";
  return endpointText(ep);
}

std::string endpointText(const tcp::endpoint& ep) {
  const auto addr = ep.address();
  if (addr.is_v6()) return "[" + addr.to_string() + "]:" + std::to_string(ep.port());
  return addr.to_string() + ":" + std::to_string(ep.port());
}

trace::Endpoint toEndpoint(const tcp::endpoint& ep) {
  trace::Endpoint e;
  e.port = ep.port();
  if (ep.address().is_v6()) {
    e.v6 = true;
    const auto b = ep.address().to_v6().to_bytes();
    std::copy(b.begin(), b.end(), e.addr.begin());
  } else {
    const auto b = ep.address().to_v4().to_bytes();
    std::copy(b.begin(), b.end(), e.addr.begin());
  }
  return e;
}

void prepareSocket(tcp::socket& s) {
  boost::system::error_code ignored;
  s.set_option(tcp::no_delay(true), ignored);
  s.non_blocking(true, ignored);
}

namespace {

// Peeks at what the peer's end left: 0 for its end of stream, above 0 for unread bytes before it,
// below 0 for a reset, whose pending ECONNRESET the peek takes (then `reset_taken`: the end of
// stream the next read gets is that reset).
ssize_t peekEnd(int fd, bool& reset_taken) {
  char c = 0;
  const ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && errno == ECONNRESET) reset_taken = true;
  return n;
}

// Shuts the sending side and says whether the peer's FIN was in before ours. The state just after
// the shutdown tells (RFC 9293 3.3.2): LAST_ACK follows only CLOSE_WAIT, FIN_WAIT1/FIN_WAIT2/CLOSING
// only ESTABLISHED. Asking before it instead misses a FIN that lands between the two system calls.
// On loopback both FINs and their ACKs can be through within the call, and then the socket is CLOSE
// either way: from LAST_ACK (the peer's FIN first) or from FIN_WAIT2, whose ending leaves a
// TIME_WAIT socket for the 4-tuple behind (ours first), which sock_diag finds. A peek first tells
// a reset (which it takes: reset_taken) from an end of stream.
bool shutdownSend(tcp::socket& s, bool& reset_taken) {
  const int fd = s.native_handle();
  sockaddr_storage peer{};
  socklen_t peer_len = sizeof peer;
  const bool connected = ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) == 0;  // (none once CLOSE)
  boost::system::error_code ec;
  s.shutdown(tcp::socket::shutdown_send, ec);
  tcp_info info{};
  socklen_t len = sizeof info;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return false;
  if (info.tcpi_state == TCP_LAST_ACK) return true;
  if (info.tcpi_state != TCP_CLOSE) return false;
  if (peekEnd(fd, reset_taken) < 0) return false;
  sockaddr_storage local{};
  socklen_t local_len = sizeof local;
  if (!connected || ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0) return true;
  return !timeWaitHeld(local, peer).value_or(false);
}

// The peer's end the kernel holds and the session has not read: its FIN (CLOSE_WAIT), or a reset
// (an open socket back in CLOSE). After a reset, a peek still says whether a FIN came before it
// (the end of stream is read first); if not, the peek takes the socket's pending ECONNRESET, and
// `reset_taken` makes the end of stream that the next read gets a reset again.
session::ProxySession::PeerEnd peerEndOf(tcp::socket& s, bool& reset_taken) {
  using PE = session::ProxySession::PeerEnd;
  tcp_info info{};
  socklen_t len = sizeof info;
  if (!s.is_open() || getsockopt(s.native_handle(), IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return PE::None;
  if (info.tcpi_state == TCP_CLOSE_WAIT) return PE::Fin;
  if (info.tcpi_state != TCP_CLOSE) return PE::None;
  if (peekEnd(s.native_handle(), reset_taken) == 0) return PE::Fin;
  return PE::Rst;  // (unread data before it: the reset is what the kernel knows for certain)
}

}  // namespace

// What the peer sent that the session no longer reads (it is over) is read and dropped before the
// close: the kernel answers a close with unread data by an RST, and the peer would see a reset the
// session never asked for. Bounded: a peer still sending after that gets the RST.
std::size_t discardUnread(tcp::socket& s, const std::function<void(std::span<const std::uint8_t>)>& each) {
  const auto buf = threadReadBuffer();
  std::size_t total = 0;
  boost::system::error_code ec;
  for (int i = 0; i < 16 && !ec && s.available(ec) > 0; ++i) {
    const std::size_t n = s.read_some(asio::buffer(buf.data(), buf.size()), ec);
    if (ec) break;
    total += n;
    if (each) each(std::span<const std::uint8_t>(buf.data(), n));
  }
  return total;
}

Connection::Connection(tcp::socket client, const Services& svc, const session::FrontEnd& front, std::uint64_t id,
                       std::function<void(std::uint64_t)> on_done)
    : svc_(svc),
      id_(id),
      on_done_(std::move(on_done)),
      client_(std::move(client)),
      upstream_(tcp::socket(client_.sock.get_executor())),
      watchdog_(client_.sock.get_executor()),
      connect_timer_(client_.sock.get_executor()),
      session_(svc, front, id) {
  session_.setSocketFacts(this);
}

std::optional<trace::ev::TcpInfo> Connection::tcpInfoAtClose(Leg leg) {
  if (!tcpFacts()) return std::nullopt;
  if (const auto& info = sock(leg).close_info) return *info;
  return tcpInfo(sock(leg).sock, "close");
}

session::ProxySession::PeerEnd Connection::peerEnd(Leg leg) {
  using PE = session::ProxySession::PeerEnd;
  Socket& s = sock(leg);
  if (s.dead) return PE::None;
  // Once our FIN is out the state no longer tells whose came first (both orders end in CLOSE):
  // what the kernel held just after it went out does (shutdownSend).
  if (s.shut) return s.peer_fin_before_ours ? PE::Fin : PE::None;
  return peerEndOf(s.sock, s.reset_taken);
}

void Connection::start() {
  client_.open = true;
  prepareSocket(client_.sock);
  tapOpen(Leg::Client);
  in::Start s{endpointText(client_.sock, true), endpointText(client_.sock, false)};
  if (tcpFacts()) s.syn = savedSyn(client_.sock.native_handle()), s.tcp = tcpInfo(client_.sock, "established");
  run(std::move(s));
}

void Connection::stop(const std::string& why) {
  if (!finished_) run(in::Stop{why});
}

void Connection::startProbe(const session::ProbeSpec& spec) { carryOut(session_.probe(spec)); }

void Connection::run(session::Input input) { carryOut(session_.handle(std::move(input))); }

void Connection::carryOut(const std::vector<session::Action>& actions) {
  for (const session::Action& a : actions) execute(a);
  // End of a burst of work: captures and trace sinks write out what it produced.
  if (svc_.tap) svc_.tap->commit();
  session_.commitEvents();
  if (finished_ && on_done_) std::exchange(on_done_, nullptr)(id_);
}

void Connection::execute(const session::Action& a) {
  std::visit(session::Overloaded{
                 [this](const act::Read& r) { read(r.leg); },
                 [this](const act::Send& s) { send(s.leg, s.bytes); },
                 [this](const act::Shutdown& s) {
                   Socket& so = sock(s.leg);
                   so.peer_fin_before_ours = shutdownSend(so.sock, so.reset_taken);
                   so.shut = true;
                   tapFin(s.leg, false);
                 },
                 [this](const act::Abort& ab) {
                   // A reset, not a FIN: SO_LINGER 0 makes close() send RST (and drop what is unsent).
                   Socket& s = sock(ab.leg);
                   if (s.dead || !s.sock.is_open()) return;
                   s.dead = true;
                   boost::system::error_code ec;
                   if (tcpFacts())
                     if (auto info = tcpInfo(s.sock, "close"))
                       s.close_info = std::make_unique<trace::ev::TcpInfo>(std::move(*info));
                   s.sock.set_option(asio::socket_base::linger(true, 0), ec);
                   if (!s.peer_reset) tapRst(ab.leg, false);
                   s.sock.close(ec);
                 },
                 [this](const act::Connect& c) { connect(c); },
                 [this](const act::ArmTimer& t) { armTimer(t.at); },
                 [this](const act::Finish&) { finish(); },
                 [this](const act::TestPrime& t) { testPrime(t); },
             },
             a);
}

// Waits until the leg is readable, then reads what is there into the thread's buffer: an idle
// connection holds no read buffer of its own.
void Connection::read(Leg leg) {
  if (leg == Leg::Upstream && !tunnel_rest_.empty()) return deliverTunnelRest();
  auto self = shared_from_this();
  sock(leg).sock.async_wait(tcp::socket::wait_read, [this, self, leg](boost::system::error_code ec) {
    if (finished_ || ec == werr::operation_aborted) return;
    std::size_t n = 0;
    const auto buf = threadReadBuffer();
    if (!ec) n = sock(leg).sock.read_some(asio::buffer(buf.data(), buf.size()), ec);
    if (ec == werr::would_block || ec == werr::try_again) return read(leg);
    if (ec == werr::eof && sock(leg).reset_taken) ec = werr::connection_reset;  // (see peerEnd)
    if (ec == werr::eof) {
      tapFin(leg, true);
      return run(in::Closed{leg, in::Closed::How::Fin, {}, sock(leg).peer_fin_before_ours});
    }
    if (ec == werr::connection_reset) {
      sock(leg).peer_reset = true;
      tapRst(leg, true);
      return run(in::Closed{leg, in::Closed::How::Rst, ec.message()});
    }
    if (ec) return run(in::Closed{leg, in::Closed::How::Error, ec.message()});
    const std::span<const std::uint8_t> bytes(buf.data(), n);
    tapData(leg, true, bytes);
    run(in::Bytes{leg, bytes});
  });
}

void Connection::send(Leg leg, std::span<const std::uint8_t> bytes) {
  sock(leg).in_flight = bytes;
  auto self = shared_from_this();
  asio::async_write(sock(leg).sock, asio::buffer(bytes.data(), bytes.size()),
                    [this, self, leg](boost::system::error_code ec, std::size_t n) {
                      if (finished_ || ec == werr::operation_aborted) return;
                      if (ec) {
                        const bool reset = ec == werr::connection_reset || ec == werr::broken_pipe;
                        return run(in::WriteFailed{leg, reset, ec.message()});
                      }
                      tapData(leg, false, sock(leg).in_flight.first(n));
                      run(in::Written{leg, n});
                    });
}

// An input that arises while an action is carried out goes in after the burst: run() from within
// run() would hand the session a second input while its first burst of actions is still read.
void Connection::later(session::Input input) {
  asio::post(client_.sock.get_executor(), [self = shared_from_this(), input = std::move(input)]() mutable {
    if (!self->finished_) self->run(std::move(input));
  });
}

// The test takes seconds for a large prime: on the prime pool, so that this thread's other
// connections go on; the connection does not wait either (the verdict is an input when it comes).
void Connection::testPrime(const act::TestPrime& t) {
  std::weak_ptr<Connection> weak = shared_from_this();
  const session::Leg leg = t.leg;
  auto deliver = [weak, leg, ex = client_.sock.get_executor()](const PrimeVerdict& v) {
    asio::post(ex, [weak, leg, v] {
      if (auto self = weak.lock(); self && !self->finished_) self->run(in::PrimeTested{leg, v.safe, v.ms, {}});
    });
  };
  auto job = [primes = svc_.primes, p = t.p] {
    const auto started = std::chrono::steady_clock::now();
    const bool safe = primes->safePrime(p);  // cached for every later connection
    return PrimeVerdict{safe,
                        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count()};
  };
  if (svc_.prime_pool && svc_.primes && svc_.prime_pool->submit(wire::toHex(t.p), std::move(job), std::move(deliver)))
    return;
  const std::size_t waiting = svc_.prime_pool ? svc_.prime_pool->maxQueued() : 0;
  later(
      in::PrimeTested{leg, std::nullopt, 0, "not tested: " + std::to_string(waiting) + " prime tests already waiting"});
}

void Connection::armTimer(session::SteadyClock::time_point at) {
  // Re-arming cancels the previous wait; a completion already queued when that happened must not
  // count, hence the generation.
  const std::uint64_t gen = ++timer_gen_;
  auto self = shared_from_this();
  watchdog_.expires_at(at);
  watchdog_.async_wait([this, self, gen](boost::system::error_code ec) {
    if (ec || finished_ || gen != timer_gen_) return;
    run(in::TimerFired{});
  });
}

void Connection::finish() {
  finished_ = true;
  if (svc_.tcp_states) svc_.tcp_states->release(id_);
  watchdog_.cancel();
  disarmConnectTimer();
  for (Leg leg : {Leg::Client, Leg::Upstream}) {
    Socket& s = sock(leg);
    if (!s.open) continue;
    if (!s.dead) {
      tapFin(leg, false);  // closing the socket sends our FIN if not sent yet
      discardUnread(s.sock);
    }
    if (svc_.tap) svc_.tap->close(id_, leg);
    if (svc_.capture) svc_.capture->detach(id_, leg);
    boost::system::error_code ec;
    s.sock.close(ec);
  }
  if (svc_.capture)
    for (const auto& d : std::exchange(watched_, {})) svc_.capture->unwatch(d);
}

// ---------------------------------------------------------------------------------------------
// Capture.

void Connection::tapOpen(Leg leg) {
  if (!svc_.tap && !svc_.tcp_states && !svc_.capture) return;
  const tcp::socket& s = sock(leg).sock;
  boost::system::error_code e1, e2;
  const auto local = s.local_endpoint(e1), remote = s.remote_endpoint(e2);
  if (e1 || e2) return;
  // --tcp-states: the leg's kernel transitions are matched to it by this 4-tuple.
  if (svc_.tcp_states) svc_.tcp_states->watch(id_, leg, local, remote);
  if (svc_.capture) svc_.capture->attach(id_, leg, toEndpoint(local), toEndpoint(remote));
  if (!svc_.tap) return;
  if (leg == Leg::Client) svc_.tap->open(id_, leg, toEndpoint(remote), toEndpoint(local), trace::Clock::now());
  else svc_.tap->open(id_, leg, toEndpoint(local), toEndpoint(remote), trace::Clock::now());
}

void Connection::tapData(Leg leg, bool inbound, std::span<const std::uint8_t> bytes) {
  if (svc_.tap) svc_.tap->data(id_, leg, (leg == Leg::Client) == inbound, bytes, trace::Clock::now());
}

void Connection::tapFin(Leg leg, bool inbound) {
  if (svc_.tap) svc_.tap->fin(id_, leg, (leg == Leg::Client) == inbound, trace::Clock::now());
}

void Connection::tapRst(Leg leg, bool inbound) {
  if (svc_.tap) svc_.tap->rst(id_, leg, (leg == Leg::Client) == inbound, trace::Clock::now());
}

}  // namespace tlstrace::net

#include "net/ui_server.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <charconv>
#include <chrono>
#include <deque>
#include <list>
#include <optional>
#include <thread>

#include "config/address.h"
#include "report/page.h"

namespace tlstrace::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kTick = std::chrono::milliseconds(250);  // how often changes are pushed
constexpr std::size_t kMaxPending = 1 << 20;            // bytes queued for one browser before updates drop
constexpr std::size_t kMaxStreams = 16;                 // browsers following /events at once
constexpr auto kRequestTimeout = std::chrono::seconds(10);

bool isLoopback(const asio::ip::address& a) {
  const auto ip = config::parseIp(a.to_string());
  return ip && config::classify(*ip) == config::AddressClass::Loopback;
}

// Host: a loopback address or "localhost", with or without a port.
bool loopbackHost(std::string_view host) {
  if (host.starts_with('[')) host = host.substr(1, host.find(']') == std::string_view::npos ? 0 : host.find(']') - 1);
  else if (const auto colon = host.rfind(':'); colon != std::string_view::npos && host.find(':') == colon)
    host = host.substr(0, colon);
  if (host == "localhost") return true;
  const auto ip = config::parseIp(host);
  return ip && config::classify(*ip) == config::AddressClass::Loopback;
}

// One browser following /events: its queue is bounded; what does not fit is counted, not queued.
struct Stream : std::enable_shared_from_this<Stream> {
  explicit Stream(tcp::socket s) : sock(std::move(s)) {}
  tcp::socket sock;
  std::deque<std::shared_ptr<const std::string>> queue;
  std::size_t pending = 0;
  std::uint64_t dropped = 0, dropped_said = 0;
  bool writing = false, closed = false;
  char scratch[512];

  void push(std::shared_ptr<const std::string> msg, bool always = false) {
    if (closed) return;
    if (!always && pending + msg->size() > kMaxPending) {
      ++dropped;
      return;
    }
    pending += msg->size();
    queue.push_back(std::move(msg));
    pump();
  }
  void pump() {
    if (writing || queue.empty() || closed) return;
    writing = true;
    asio::async_write(sock, asio::buffer(*queue.front()),
                      [self = shared_from_this()](beast::error_code ec, std::size_t) {
                        self->writing = false;
                        self->pending -= self->queue.front()->size();
                        self->queue.pop_front();
                        if (ec) return self->close();
                        self->pump();
                      });
  }
  // The browser sends nothing after its request: a read that ends is the browser gone.
  void watch() {
    sock.async_read_some(asio::buffer(scratch), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->close();
      self->watch();
    });
  }
  void close() {
    if (closed) return;
    closed = true;
    beast::error_code ignored;
    sock.shutdown(tcp::socket::shutdown_both, ignored);
    sock.close(ignored);
  }
};

// "/conn/ID" (ID: a connection id, decimal): the id; nullopt for any other target.
std::optional<std::uint64_t> connId(std::string_view target) {
  constexpr std::string_view kPrefix = "/conn/";
  if (!target.starts_with(kPrefix)) return std::nullopt;
  const std::string_view digits = target.substr(kPrefix.size());
  std::uint64_t id = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), id);
  if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty()) return std::nullopt;
  return id;
}

std::shared_ptr<const std::string> sseMessage(std::string_view event, std::string_view json) {
  // (JSON text has no raw line break: one data line per message)
  auto m = std::make_shared<std::string>();
  m->reserve(json.size() + event.size() + 16);
  m->append("event: ").append(event).append("\ndata: ").append(json).append("\n\n");
  return m;
}

}  // namespace

struct UiServer::Impl {
  config::HostPort addr;
  bool allow_remote;
  std::shared_ptr<report::LiveSink> live;
  asio::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  asio::steady_timer tick{ioc};
  std::list<std::shared_ptr<Stream>> streams;
  std::thread thread;

  void accept() {
    acceptor.async_accept([this](beast::error_code ec, tcp::socket sock) {
      if (ec == asio::error::operation_aborted) return;
      beast::error_code ignored;
      const auto peer = sock.remote_endpoint(ignored);
      if (!ec && !ignored && (allow_remote || isLoopback(peer.address()))) serve(std::move(sock));
      accept();
    });
  }

  void serve(tcp::socket sock) {
    struct Request {
      explicit Request(tcp::socket s) : stream(std::move(s)) {}
      beast::tcp_stream stream;
      beast::flat_buffer buf;
      http::request<http::string_body> req;
      http::response<http::string_body> res;
    };
    auto r = std::make_shared<Request>(std::move(sock));
    r->stream.expires_after(kRequestTimeout);
    http::async_read(r->stream, r->buf, r->req, [this, r](beast::error_code ec, std::size_t) {
      if (ec) return;
      const auto host = r->req[http::field::host];
      const std::string_view target(r->req.target().data(), r->req.target().size());
      if (r->req.method() == http::verb::get && target == "/events" && (allow_remote || loopbackHost(host)))
        return follow(r->stream.release_socket());
      r->res.version(11);
      r->res.keep_alive(false);
      r->res.set(http::field::cache_control, "no-store");
      r->res.set("X-Content-Type-Options", "nosniff");
      if (!allow_remote && !loopbackHost(host)) {
        r->res.result(http::status::forbidden);
        r->res.body() = "this page answers to a loopback Host only (--allow-remote to serve any)\n";
      } else if (const auto id = connId(target); r->req.method() == http::verb::get && id) {
        // One connection's events, fetched when the page opens it (the stream carries rows only).
        r->res.body() = live->detail(*id);
        r->res.result(r->res.body().empty() ? http::status::not_found : http::status::ok);
        if (r->res.body().empty()) r->res.body() = "not kept\n";
        else r->res.set(http::field::content_type, "application/json");
      } else if (r->req.method() != http::verb::get || (target != "/" && target != "/index.html")) {
        r->res.result(http::status::not_found);
        r->res.body() = "not found\n";
      } else {
        r->res.result(http::status::ok);
        r->res.set(http::field::content_type, "text/html; charset=utf-8");
        r->res.body() = report::renderPage(live->snapshot(), report::PageMode::Live, "tlstrace live");
      }
      r->res.prepare_payload();
      http::async_write(r->stream, r->res, [r](beast::error_code, std::size_t) {
        beast::error_code ignored;
        r->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
      });
    });
  }

  void follow(tcp::socket sock) {
    streams.remove_if([](const auto& s) { return s->closed; });
    auto s = std::make_shared<Stream>(std::move(sock));
    if (streams.size() >= kMaxStreams) {
      s->push(std::make_shared<const std::string>("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n"),
              true);
      return;
    }
    s->push(std::make_shared<const std::string>("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                                "Cache-Control: no-store\r\nConnection: keep-alive\r\n\r\n"
                                                "retry: 2000\n\n"),
            true);
    // What the page may have missed between its load and now: everything kept, once.
    s->push(sseMessage("conn", live->snapshot().dump()), true);
    s->watch();
    streams.push_back(std::move(s));
  }

  void onTick() {
    tick.expires_after(kTick);
    tick.async_wait([this](beast::error_code ec) {
      if (ec) return;
      streams.remove_if([](const auto& s) { return s->closed; });
      const std::string update = live->takeUpdates(!streams.empty());
      if (!update.empty()) {
        const auto msg = sseMessage("conn", update);
        for (auto& s : streams) s->push(msg);
      }
      for (auto& s : streams)
        if (s->dropped != s->dropped_said) {
          s->dropped_said = s->dropped;
          s->push(sseMessage("stats", "{\"dropped\":" + std::to_string(s->dropped) + "}"), true);
        }
      onTick();
    });
  }
};

UiServer::UiServer(config::HostPort addr, bool allow_remote, std::shared_ptr<report::LiveSink> live)
    : impl_(std::make_unique<Impl>()) {
  impl_->addr = std::move(addr);
  impl_->allow_remote = allow_remote;
  impl_->live = std::move(live);
}

UiServer::~UiServer() { stop(); }

std::string UiServer::start(std::string& error) {
  Impl& m = *impl_;
  beast::error_code ec;
  tcp::resolver resolver(m.ioc);
  const auto found = resolver.resolve(m.addr.host, std::to_string(m.addr.port), tcp::resolver::numeric_service, ec);
  if (ec || found.empty()) {
    error = "--ui " + m.addr.str() + ": " + (ec ? ec.message() : "no address");
    return {};
  }
  const tcp::endpoint ep = found.begin()->endpoint();
  if (!m.allow_remote && !isLoopback(ep.address())) {
    error = "--ui " + m.addr.str() + " is not a loopback address: add --allow-remote to serve the page beyond it";
    return {};
  }
  m.acceptor.open(ep.protocol(), ec);
  if (!ec) m.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) m.acceptor.bind(ep, ec);
  if (!ec) m.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    error = "--ui " + m.addr.str() + ": " + ec.message();
    return {};
  }
  const auto bound = m.acceptor.local_endpoint(ec);
  m.accept();
  m.onTick();
  m.thread = std::thread([&m] { m.ioc.run(); });
  const std::string ip = bound.address().to_string();
  return (bound.address().is_v6() ? "[" + ip + "]" : ip) + ":" + std::to_string(bound.port());
}

void UiServer::stop() {
  Impl& m = *impl_;
  if (!m.thread.joinable()) return;
  asio::post(m.ioc, [&m] {
    beast::error_code ignored;
    m.acceptor.close(ignored);
    m.tick.cancel();
    for (auto& s : m.streams) s->close();
    m.ioc.stop();
  });
  m.thread.join();
}

}  // namespace tlstrace::net

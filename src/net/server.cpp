// The listener and the process loop: accept, hand each client to a Connection, stop on signals.
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <unordered_map>

#include <boost/asio/write.hpp>

#include "net/connection.h"
#include "net/proxy_request.h"
#include "trace/event.h"

namespace tlstrace::net {

namespace {

class ProxyServer {
 public:
  ProxyServer(asio::io_context& io, const Services& svc)
      : io_(io), svc_(svc), acceptor_(io), grace_(io) {}

  void start() {
    const auto& l = svc_.cfg->listen;
    tcp::resolver resolver(io_);
    auto results = resolver.resolve(l.host, std::to_string(l.port), tcp::resolver::passive);
    const tcp::endpoint ep = *results.begin();
    acceptor_.open(ep.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen(asio::socket_base::max_listen_connections);
    accept();
  }

  [[nodiscard]] std::string boundAddress() const {
    const auto ep = acceptor_.local_endpoint();
    if (ep.address().is_v6()) return "[" + ep.address().to_string() + "]:" + std::to_string(ep.port());
    return ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  void stop() {
    boost::system::error_code ec;
    acceptor_.close(ec);
    stopping_ = true;
    // Open connections get a grace period to finish on their own, then are closed politely.
    grace_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(svc_.cfg->shutdown_grace_s)));
    grace_.async_wait([this](boost::system::error_code e) {
      if (e) return;
      auto live = live_;  // stop() may erase from live_
      for (auto& [id, weak] : live)
        if (auto c = weak.lock()) {
          c->stop("proxy shutting down");
          c->tapCommit();
        }
    });
    if (live_.empty()) grace_.cancel();
  }

 private:
  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket sock) {
      if (ec == asio::error::operation_aborted || stopping_) return;
      if (!ec) admit(std::move(sock));
      accept();
    });
  }

  void refuse(std::uint64_t id, tcp::socket sock, const std::string& reason, bool answer_503) {
    trace::Event e;
    e.ts = trace::Clock::now();
    e.conn = id;
    e.name = "conn.refused";
    boost::system::error_code ignored;
    const auto remote = sock.remote_endpoint(ignored);
    e.fields.set("client", remote.address().to_string() + ":" + std::to_string(remote.port()));
    e.fields.set("reason", reason);
    svc_.tracer->emit(e);
    svc_.tracer->flush();
    if (!answer_503) {
      sock.close(ignored);
      return;
    }
    // Explicit mode: a proper HTTP answer, written without waiting for the request.
    auto s = std::make_shared<tcp::socket>(std::move(sock));
    auto body = std::make_shared<std::string>(httpErrorResponse(503, reason));
    asio::async_write(*s, asio::buffer(*body), [s, body](boost::system::error_code, std::size_t) {
      boost::system::error_code e2;
      s->shutdown(tcp::socket::shutdown_send, e2);
      s->close(e2);
    });
  }

  void admit(tcp::socket sock) {
    const std::uint64_t id = next_id_++;
    boost::system::error_code ec;
    const auto remote = sock.remote_endpoint(ec);
    if (ec) return;
    if (!svc_.cfg->allow_remote && !config::isLocalAddress(remote.address().to_string()))
      return refuse(id, std::move(sock),
                    "client " + remote.address().to_string() + " is not on a loopback or private network "
                    "(start with --allow-remote to accept it)", false);
    if (live_.size() >= svc_.cfg->max_connections)
      return refuse(id, std::move(sock), "--max-connections (" + std::to_string(svc_.cfg->max_connections) + ") reached",
                    svc_.cfg->mode == config::Mode::Explicit);
    auto c = std::make_shared<Connection>(std::move(sock), svc_, id, [this](std::uint64_t done) {
      live_.erase(done);
      if (stopping_ && live_.empty()) grace_.cancel();
    });
    live_.emplace(id, c);
    c->start();
  }

  asio::io_context& io_;
  const Services& svc_;
  tcp::acceptor acceptor_;
  asio::steady_timer grace_;
  std::unordered_map<std::uint64_t, std::weak_ptr<Connection>> live_;
  std::uint64_t next_id_ = 1;
  bool stopping_ = false;
};

}  // namespace

int runProxy(const Services& services, const std::function<void(const std::string&)>& on_listening) {
  asio::io_context io(1);
  ProxyServer server(io, services);
  server.start();
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code ec, int) {
    if (!ec) server.stop();
  });
  if (on_listening) on_listening(server.boundAddress());
  io.run();
  services.tracer->flush();
  return 0;
}

}  // namespace tlstrace::net

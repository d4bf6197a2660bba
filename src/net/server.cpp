// The listener and the process loop: one io_context per thread (connections stay on the thread
// that accepted them, so their handlers never run concurrently and need no locks), an acceptor
// handing sockets out round-robin, and a clean stop on SIGINT/SIGTERM.
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/write.hpp>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "net/connection.h"
#include "net/proxy_request.h"
#include "trace/event.h"

namespace tlstrace::net {

namespace {

using Guard = asio::executor_work_guard<asio::io_context::executor_type>;

class ProxyServer {
 public:
  ProxyServer(std::vector<std::unique_ptr<asio::io_context>>& ctxs, const Services& svc)
      : ctxs_(ctxs), svc_(svc), acceptor_(*ctxs[0]), grace_(*ctxs[0]), accept_retry_(*ctxs[0]) {
    for (auto& c : ctxs_) guards_.emplace_back(c->get_executor());
  }

  void start() {
    const auto& l = svc_.cfg->listen;
    tcp::resolver resolver(*ctxs_[0]);
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

  // On the acceptor's thread (signal handler).
  void stop() {
    boost::system::error_code ec;
    acceptor_.close(ec);
    stopping_ = true;
    // Open connections get a grace period to finish on their own, then are closed politely, each
    // on its own thread.
    grace_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(svc_.cfg->shutdown_grace_s)));
    grace_.async_wait([this](boost::system::error_code e) {
      if (e) return;
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& [id, entry] : live_) {
        asio::post(*entry.ctx, [weak = entry.conn] {
          if (auto c = weak.lock()) {
            c->stop("proxy shutting down");
            c->tapCommit();
          }
        });
      }
    });
    maybeRelease();
  }

 private:
  struct Entry {
    asio::io_context* ctx;
    std::weak_ptr<Connection> conn;
  };

  void accept() {
    asio::io_context& target = *ctxs_[next_ctx_++ % ctxs_.size()];
    acceptor_.async_accept(target, [this, &target](boost::system::error_code ec, tcp::socket sock) {
      if (ec == asio::error::operation_aborted || stopping_) return;
      if (!ec) {
        accept_error_reported_ = false;
        admit(target, std::move(sock));
        return accept();
      }
      // Out of descriptors or memory: the pending connection stays queued and the listener stays
      // readable, so retrying at once would spin. Wait a little, as nginx does.
      if (!accept_error_reported_ && svc_.warn) svc_.warn("accept failed: " + ec.message() + " (retrying every 50 ms)");
      accept_error_reported_ = true;
      accept_retry_.expires_after(std::chrono::milliseconds(50));
      accept_retry_.async_wait([this](boost::system::error_code e) {
        if (!e && !stopping_) accept();
      });
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
    svc_.tracer->emit(std::move(e));
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

  // On the acceptor's thread; the connection itself starts on `ctx`'s thread.
  void admit(asio::io_context& ctx, tcp::socket sock) {
    const std::uint64_t id = next_id_++;
    boost::system::error_code ec;
    const auto remote = sock.remote_endpoint(ec);
    if (ec) return;
    if (!svc_.cfg->allow_remote && !config::isLocalAddress(remote.address().to_string()))
      return refuse(id, std::move(sock),
                    "client " + remote.address().to_string() +
                        " is not on a loopback or private network "
                        "(start with --allow-remote to accept it)",
                    false);
    std::size_t live = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      live = live_.size();
    }
    if (live >= svc_.cfg->max_connections)
      return refuse(id, std::move(sock),
                    "--max-connections (" + std::to_string(svc_.cfg->max_connections) + ") reached",
                    svc_.cfg->mode == config::Mode::Explicit);
    auto c = std::make_shared<Connection>(std::move(sock), svc_, id, [this](std::uint64_t done) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        live_.erase(done);
      }
      if (stopping_) asio::post(*ctxs_[0], [this] { maybeRelease(); });
    });
    {
      std::lock_guard<std::mutex> lock(mu_);
      live_.emplace(id, Entry{&ctx, c});
    }
    asio::post(ctx, [c] {
      c->start();
      c->tapCommit();
    });
  }

  // Once stopping and idle, let every io thread run out of work.
  void maybeRelease() {
    if (!stopping_) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!live_.empty()) return;
    }
    grace_.cancel();
    for (auto& g : guards_) g.reset();
  }

  std::vector<std::unique_ptr<asio::io_context>>& ctxs_;
  const Services& svc_;
  tcp::acceptor acceptor_;
  asio::steady_timer grace_;
  asio::steady_timer accept_retry_;
  bool accept_error_reported_ = false;
  std::vector<Guard> guards_;
  std::mutex mu_;
  std::unordered_map<std::uint64_t, Entry> live_;
  std::uint64_t next_id_ = 1;
  std::size_t next_ctx_ = 0;
  std::atomic<bool> stopping_{false};
};

}  // namespace

int runProxy(const Services& services, const std::function<void(const std::string&)>& on_listening) {
  std::size_t threads = services.cfg->threads;
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::unique_ptr<asio::io_context>> ctxs;
  for (std::size_t i = 0; i < threads; ++i) ctxs.push_back(std::make_unique<asio::io_context>(1));
  ProxyServer server(ctxs, services);
  server.start();
  asio::signal_set signals(*ctxs[0], SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code ec, int) {
    if (!ec) server.stop();
  });
  if (on_listening) on_listening(server.boundAddress());
  std::vector<std::thread> pool;
  for (std::size_t i = 1; i < threads; ++i) pool.emplace_back([&ctxs, i] { ctxs[i]->run(); });
  ctxs[0]->run();
  for (auto& t : pool) t.join();
  services.tracer->flush();
  return 0;
}

}  // namespace tlstrace::net

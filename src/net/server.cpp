// The listener and the process loop: one io_context per thread, each thread accepting its own
// connections (they stay on it, so their handlers never run concurrently and need no locks), and
// a clean stop on SIGINT/SIGTERM/SIGQUIT; SIGHUP reopens the outputs.
//
// Each io thread may keep its sockets in a descriptor table of its own (unshare(CLONE_FILES)):
// the open-file limit applies per table, so two threads hold twice the connections a single
// table can (10,000 proxied connections need ~20,100 descriptors; a hard limit of 20,000 is
// common and only CAP_SYS_RESOURCE raises it). A descriptor is then valid only on the thread
// that opened it, which is why every thread accepts for itself: one accept is pending at a time,
// and after each connection it moves to the thread with the fewest live connections.
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstring>
#include <latch>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>

#include "net/connection.h"
#include "net/front_ends.h"
#include "net/original_dst.h"
#include "net/tcp_probe.h"
#include "net/tcp_state_watch.h"
#include "trace/event.h"

namespace tlstrace::net {

namespace {

// Lookups run in parallel on a few threads, more (up to 16) while some are blocked (on a slow or
// dead DNS server), and equal names share one lookup; beyond the queue a CONNECT is refused (502)
// rather than kept waiting. The safe-prime test is CPU work: one thread, so that a burst of custom
// primes does not take the cores from the io threads.
constexpr std::size_t kResolverThreads = 2, kResolverMaxThreads = 16, kResolverQueue = 64;
constexpr std::size_t kPrimeThreads = 1, kPrimeQueue = 16;

using Guard = asio::executor_work_guard<asio::io_context::executor_type>;

class ProxyServer {
 public:
  ProxyServer(std::vector<std::unique_ptr<asio::io_context>>& ctxs, const Services& svc)
      : ctxs_(ctxs), svc_(svc), front_(modeFrontEnd(svc)), grace_(*ctxs[0]) {
    for (std::size_t i = 0; i < ctxs_.size(); ++i) {
      workers_.push_back(std::make_unique<Worker>(*ctxs_[i], i));
      guards_.emplace_back(ctxs_[i]->get_executor());
    }
  }

  // On the main thread (worker 0), before the other threads start.
  void listen() {
    const auto& l = svc_.cfg->listen;
    // Failures name the address and the system's text (Asio's own exception text carries its
    // source location, which tells the user nothing).
    const std::string where =
        (l.host.find(':') != std::string::npos ? "[" + l.host + "]" : l.host) + ":" + std::to_string(l.port);
    const auto fail = [&](const char* what, const boost::system::error_code& ec) {
      throw std::runtime_error(std::string("cannot ") + what + " " + where + ": " + ec.message());
    };
    boost::system::error_code ec;
    tcp::resolver resolver(*ctxs_[0]);
    auto results = resolver.resolve(l.host, std::to_string(l.port), tcp::resolver::passive, ec);
    if (ec || results.empty()) fail("resolve", ec);
    const tcp::endpoint ep = *results.begin();
    if (!svc_.cfg->allow_remote && config::classify(toIp(ep.address())) != config::AddressClass::Loopback)
      throw config::ConfigError(config::listenNeedsAllowRemote(l.host + " (" + ep.address().to_string() + ")"));
    tcp::acceptor& a = workers_[0]->acceptor;
    if (a.open(ep.protocol(), ec); ec) fail("open a socket for", ec);
    if (a.set_option(tcp::acceptor::reuse_address(true), ec); ec) fail("set SO_REUSEADDR on", ec);
    if (a.bind(ep, ec); ec) fail("listen on", ec);
    // Before listen(2): every connection then keeps its SYN until read (tcp.syn).
    if (svc_.tracer && svc_.tracer->enabled(trace::kTcp)) (void)saveSyns(a.native_handle());
    if (a.listen(static_cast<int>(svc_.cfg->backlog), ec); ec) fail("listen on", ec);
    protocol_ = ep.protocol();
    listen_ep_ = a.local_endpoint(ec);
    // TPROXY hands us connections to other hosts' addresses; REDIRECT needs nothing. Best effort:
    // without CAP_NET_ADMIN, REDIRECT still works.
    if (svc_.cfg->mode == config::Mode::Transparent)
      if (auto why = allowForeignAddresses(a); !why.empty() && svc_.warn)
        svc_.warn("transparent mode: " + why + " (TPROXY needs it; REDIRECT/DNAT work without)");
    workers_[0]->listen_fd = a.native_handle();
    workers_[0]->can_accept = true;
  }

  // On worker i's own thread before it runs, while no connection exists yet (a table taken later
  // would hold references to other threads' sockets and keep them open). The worker keeps this
  // thread's reference to the listening socket: the copy in its own table, or a duplicate when
  // the table is shared.
  void enterThread(std::size_t i) {
    if (i == 0) return;
    Worker& w = *workers_[i];
    const int listen_fd = workers_[0]->acceptor.native_handle();
    int fd = -1;
    if (svc_.own_fd_tables && ::unshare(CLONE_FILES) == 0) {
      fd = listen_fd;
    } else {
      if (svc_.own_fd_tables && svc_.warn)
        svc_.warn("io thread " + std::to_string(i) +
                  " shares the process's descriptor table: unshare: " + std::strerror(errno));
      fd = ::dup(listen_fd);
    }
    if (fd < 0) {
      if (svc_.warn)
        svc_.warn("io thread " + std::to_string(i) + " cannot accept connections: " + std::strerror(errno));
      return;
    }
    w.listen_fd = fd;
    w.can_accept = true;
  }

  void startAccepting() {
    if (svc_.tracer && svc_.tracer->enabled(trace::kTcp)) {
      monitor_ = std::make_unique<ListenMonitor>(*ctxs_[0], *svc_.tracer);
      monitor_->start(workers_[0]->listen_fd, workers_[0]->acceptor.local_endpoint(), svc_.cfg->backlog);
    }
    accept(*workers_[0]);
  }
  [[nodiscard]] std::uint16_t boundPort() const { return workers_[0]->acceptor.local_endpoint().port(); }

  [[nodiscard]] std::string boundAddress() const {
    const auto ep = workers_[0]->acceptor.local_endpoint();
    if (ep.address().is_v6()) return "[" + ep.address().to_string() + "]:" + std::to_string(ep.port());
    return ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  // On the main thread (signal handler).
  void stop() {
    if (stopping_.exchange(true)) return;
    if (monitor_) monitor_->stop();  // (before worker 0 closes the listening socket it reads)
    // Each thread closes its own reference to the listening socket (in its own table).
    for (auto& w : workers_) {
      asio::post(w->ctx, [&w = *w] {
        boost::system::error_code ec;
        if (w.acceptor.is_open()) w.acceptor.close(ec);
        else if (w.listen_fd >= 0) ::close(w.listen_fd);
        w.listen_fd = -1;
        w.retry.cancel();
      });
    }
    // Open connections get a grace period to finish on their own, then are closed politely, each
    // on its own thread.
    grace_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(svc_.cfg->shutdown_grace_s)));
    grace_.async_wait([this](boost::system::error_code e) {
      if (e) return;
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& [id, entry] : live_) {
        asio::post(*entry.ctx, [weak = entry.conn] {
          if (auto c = weak.lock()) c->stop("proxy shutting down");
        });
      }
    });
    maybeRelease();
  }

 private:
  struct Worker {
    Worker(asio::io_context& c, std::size_t i) : ctx(c), index(i), acceptor(c), retry(c) {}
    asio::io_context& ctx;
    const std::size_t index;
    int listen_fd = -1;      // this thread's reference to the listening socket
    tcp::acceptor acceptor;  // holds listen_fd while this thread has the next accept
    asio::steady_timer retry;
    std::atomic<bool> can_accept{false};  // read by whoever hands on
    bool error_reported = false;
    std::atomic<std::size_t> live{0};  // written on this thread, read by whoever hands on
  };

  struct Entry {
    asio::io_context* ctx;
    std::weak_ptr<Connection> conn;
  };

  void accept(Worker& w) {
    if (!w.acceptor.is_open()) {
      boost::system::error_code ec;
      w.acceptor.assign(protocol_, w.listen_fd, ec);
      if (ec) {  // epoll_ctl failed (out of memory): let another thread accept
        if (svc_.warn)
          svc_.warn("io thread " + std::to_string(w.index) + " cannot accept connections: " + ec.message());
        w.can_accept = false;
        return handOn(w);
      }
    }
    w.acceptor.async_accept([this, &w](boost::system::error_code ec, tcp::socket sock) {
      if (ec == asio::error::operation_aborted || stopping_) return;
      if (!ec) {
        w.error_reported = false;
        admit(w, std::move(sock));
        return handOn(w);
      }
      // Out of descriptors or memory: the pending connection stays queued and the listener stays
      // readable, so retrying at once would spin. Wait a little, as nginx does.
      if (!w.error_reported && svc_.warn) svc_.warn("accept failed: " + ec.message() + " (retrying every 50 ms)");
      w.error_reported = true;
      w.retry.expires_after(std::chrono::milliseconds(50));
      w.retry.async_wait([this, &w](boost::system::error_code e) {
        if (!e && !stopping_) handOn(w);
      });
    });
  }

  // The next accept goes to the accepting thread with the fewest live connections; on a tie to
  // the first after `from`, so that connections opened together alternate.
  void handOn(Worker& from) {
    const std::size_t n = workers_.size();
    Worker* best = nullptr;
    std::size_t best_live = 0;
    for (std::size_t k = 1; k <= n; ++k) {
      Worker& w = *workers_[(from.index + k) % n];
      if (!w.can_accept) continue;
      const std::size_t live = w.live.load(std::memory_order_relaxed);
      if (!best || live < best_live) {
        best = &w;
        best_live = live;
      }
    }
    if (!best) return;  // no thread can watch the listening socket (warned)
    if (best == &from) return accept(from);
    // Only the thread with the next accept watches the listening socket: a thread merely holding
    // it in its epoll set would be woken by every new connection for nothing.
    boost::system::error_code ignored;
    if (from.acceptor.is_open()) (void)from.acceptor.release(ignored);
    asio::post(best->ctx, [this, best] {
      if (!stopping_) accept(*best);
    });
  }

  void refuse(std::uint64_t id, tcp::socket sock, const std::string& reason, bool answer_http, int status = 503,
              std::optional<std::string> cause = std::nullopt) {
    boost::system::error_code ignored;
    const auto remote = sock.remote_endpoint(ignored);
    const std::string ip = remote.address().to_string();
    const std::string client = (remote.address().is_v6() ? "[" + ip + "]" : ip) + ":" + std::to_string(remote.port());
    auto r = session::refuseConnection(id, client, reason, answer_http, status, std::move(cause));
    svc_.tracer->emit(std::move(r.event));
    if (r.response.empty()) {
      sock.close(ignored);
      return;
    }
    // A proper HTTP answer, written without waiting for the request.
    auto s = std::make_shared<tcp::socket>(std::move(sock));
    auto body = std::make_shared<std::string>(std::move(r.response));
    asio::async_write(*s, asio::buffer(*body), [s, body](boost::system::error_code, std::size_t) {
      boost::system::error_code e2;
      s->shutdown(tcp::socket::shutdown_send, e2);
      s->close(e2);
    });
  }

  // On the accepting thread, which the connection stays on.
  void admit(Worker& w, tcp::socket sock) {
    const std::uint64_t id = next_id_++;
    boost::system::error_code ec;
    const auto remote = sock.remote_endpoint(ec);
    if (ec) return;
    if (!svc_.cfg->allow_remote && config::classify(toIp(remote.address())) != config::AddressClass::Loopback)
      return refuse(id, std::move(sock),
                    "client " + toIp(remote.address()).str() +
                        " is not on loopback (the proxy serves others only with --allow-remote)",
                    front_->answersRefusals(), 403);
    std::size_t live = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      live = live_.size();
    }
    if (live >= svc_.cfg->max_connections)
      return refuse(id, std::move(sock),
                    "--max-connections (" + std::to_string(svc_.cfg->max_connections) + ") reached",
                    front_->answersRefusals());
    std::unique_ptr<session::FrontEnd> own_front;
    if (svc_.cfg->mode == config::Mode::Transparent) {
      std::string why, cause;
      own_front = transparentFrontEnd(sock, listen_ep_, svc_, why, cause);
      if (!own_front) return refuse(id, std::move(sock), why, false, 503, std::move(cause));
    }
    auto c = std::make_shared<Connection>(std::move(sock), svc_, own_front ? *own_front : *front_, id,
                                          [this, &w](std::uint64_t done) {
                                            w.live.fetch_sub(1, std::memory_order_relaxed);
                                            {
                                              std::lock_guard<std::mutex> lock(mu_);
                                              live_.erase(done);
                                            }
                                            if (stopping_) asio::post(*ctxs_[0], [this] { maybeRelease(); });
                                          });
    if (own_front) c->keepFrontEnd(std::move(own_front));
    {
      std::lock_guard<std::mutex> lock(mu_);
      live_.emplace(id, Entry{&w.ctx, c});
    }
    w.live.fetch_add(1, std::memory_order_relaxed);
    asio::post(w.ctx, [c] { c->start(); });
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
  std::unique_ptr<session::FrontEnd> front_;
  std::vector<std::unique_ptr<Worker>> workers_;
  tcp::acceptor::protocol_type protocol_ = tcp::v4();
  tcp::endpoint listen_ep_;  // as bound (the loop guard compares original destinations with it)
  asio::steady_timer grace_;
  std::vector<Guard> guards_;
  std::mutex mu_;
  std::unordered_map<std::uint64_t, Entry> live_;
  std::atomic<std::uint64_t> next_id_{1};  // accepts are serialised, but on different threads
  std::atomic<bool> stopping_{false};
  std::unique_ptr<ListenMonitor> monitor_;  // tcp.listen, on worker 0's thread
};

}  // namespace

bool threadsCanOwnFdTables() {
#if defined(__SANITIZE_THREAD__)
  // ThreadSanitizer models one descriptor table per process: the same number used by two threads
  // for two different sockets reads to it as a race. Its builds run the shared-table path.
  return false;
#endif
  bool ok = false;
  // The probe's table (a copy) goes with the thread.
  std::thread([&ok] { ok = ::unshare(CLONE_FILES) == 0; }).join();
  return ok;
}

int runProxy(const Services& shared, const std::function<void(const std::string&)>& on_listening) {
  const std::size_t threads = config::ioThreads(*shared.cfg);
  std::vector<std::unique_ptr<asio::io_context>> ctxs;
  for (std::size_t i = 0; i < threads; ++i) ctxs.push_back(std::make_unique<asio::io_context>(1));
  // The worker pools go before the io_contexts do (declared after them): closed, they post no
  // result to a context that is gone.
  ResolverPool resolver(kResolverThreads, kResolverMaxThreads, kResolverQueue);
  PrimePool prime_pool(kPrimeThreads, kPrimeThreads, kPrimeQueue);
  Services services = shared;
  services.resolver = &resolver;
  services.prime_pool = &prime_pool;
  ProxyServer server(ctxs, services);
  server.listen();
  if (services.tcp_states) services.tcp_states->listenPort(server.boundPort());
  // Before the threads take their tables: its descriptors must be in all of them (a signal runs
  // its handler on any thread).
  // Every terminating signal a user or a supervisor sends ends the same way: stop accepting,
  // let connections finish, flush (SIGQUIT too: no core dump wanted from a proxy holding secrets).
  asio::signal_set signals(*ctxs[0], SIGINT, SIGTERM, SIGQUIT);
  asio::signal_set hup(*ctxs[0], SIGHUP);  // log rotation: reopen the outputs, go on
  const auto stopAll = [&] {
    server.stop();
    boost::system::error_code ignored;
    signals.cancel(ignored);
    hup.cancel(ignored);
  };
  signals.async_wait([&](boost::system::error_code ec, int) {
    if (!ec) stopAll();
  });
  std::function<void()> awaitHup = [&] {
    hup.async_wait([&](boost::system::error_code ec, int) {
      if (ec) return;
      if (services.reopen) services.reopen();
      awaitHup();
    });
  };
  awaitHup();
  if (services.stop) services.stop->attach([&] { asio::post(*ctxs[0], stopAll); });
  std::latch entered(static_cast<std::ptrdiff_t>(threads - 1));
  std::vector<std::thread> pool;
  for (std::size_t i = 1; i < threads; ++i)
    pool.emplace_back([&ctxs, &server, &entered, i] {
      server.enterThread(i);
      entered.count_down();
      ctxs[i]->run();
    });
  entered.wait();
  server.startAccepting();
  if (on_listening) on_listening(server.boundAddress());
  ctxs[0]->run();
  for (auto& t : pool) t.join();
  if (services.stop) services.stop->detach();
  return 0;  // the app flushes the tracer, for a bounded time (a stalled output must not hold the exit)
}

}  // namespace tlstrace::net

#include "net/tcp_state_watch.h"

#ifndef TLSTRACE_TCP_STATES

namespace tlstrace::net {
std::unique_ptr<TcpStateWatch> TcpStateWatch::start(trace::Tracer&, std::string& why) {
  why = "this tlstrace was built without eBPF (cmake -DTLSTRACE_TCP_STATES=ON needs clang, libbpf-dev, bpftool)";
  return nullptr;
}
}  // namespace tlstrace::net

#else

#include <bpf/libbpf.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "analysis/tcp_states.h"
#include "tcp_state.skel.h"  // generated at build time (bpftool gen skeleton)

namespace tlstrace::net {
namespace {

// As bpf/tcp_state.bpf.c writes it.
struct RawEvent {
  std::uint64_t ns, sk;
  std::uint32_t oldstate, newstate;
  std::uint16_t family, sport, dport, err;
  std::uint8_t saddr[16], daddr[16];
};

struct Key {
  std::array<std::uint8_t, 16> local{}, remote{};
  std::uint16_t lport = 0, rport = 0;
  bool operator==(const Key&) const = default;
};
struct KeyHash {
  std::size_t operator()(const Key& k) const {
    std::size_t h = (std::size_t{k.lport} << 16) ^ k.rport;
    for (auto b : k.local) h = h * 131 + b;
    for (auto b : k.remote) h = h * 131 + b;
    return h;
  }
};

Key keyOf(const boost::asio::ip::tcp::endpoint& local, const boost::asio::ip::tcp::endpoint& remote) {
  Key k;
  auto put = [](std::array<std::uint8_t, 16>& to, const boost::asio::ip::address& a) {
    if (a.is_v4()) {
      const auto b = a.to_v4().to_bytes();
      std::memcpy(to.data(), b.data(), b.size());
    } else {
      const auto b = a.to_v6().to_bytes();
      std::memcpy(to.data(), b.data(), b.size());
    }
  };
  put(k.local, local.address());
  put(k.remote, remote.address());
  k.lport = local.port();
  k.rport = remote.port();
  return k;
}

Key keyOf(const RawEvent& e) {
  Key k;
  std::memcpy(k.local.data(), e.saddr, 16);
  std::memcpy(k.remote.data(), e.daddr, 16);
  k.lport = e.sport;
  k.rport = e.dport;
  return k;
}

std::string text(const boost::asio::ip::tcp::endpoint& ep) {
  const auto a = ep.address();
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(ep.port());
}

std::uint64_t monotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::uint64_t(ts.tv_sec) * 1000000000u + std::uint64_t(ts.tv_nsec);
}

using Steady = std::chrono::steady_clock;
constexpr auto kPendingFor = std::chrono::seconds(5);  // a transition before the leg is known
constexpr auto kKeptFor = std::chrono::seconds(70);    // a leg past close: TIME_WAIT is 60 s on Linux
constexpr std::size_t kMaxPending = 4096, kMaxLegs = 65536;

class BpfWatch final : public TcpStateWatch {
 public:
  BpfWatch(trace::Tracer& t, tcp_state* skel) : tracer_(t), skel_(skel) {}
  ~BpfWatch() override {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    ring_buffer__free(rb_);
    tcp_state__destroy(skel_);
  }

  bool attach(std::string& why) {
    if (int err = tcp_state__attach(skel_); err != 0) {
      why = "cannot attach to sock:inet_sock_set_state: " + std::string(std::strerror(-err));
      return false;
    }
    rb_ = ring_buffer__new(bpf_map__fd(skel_->maps.events), &BpfWatch::onRaw, this, nullptr);
    if (!rb_) {
      why = "cannot open the eBPF ring buffer: " + std::string(std::strerror(errno));
      return false;
    }
    thread_ = std::thread([this] { loop(); });
    return true;
  }

  void listenPort(std::uint16_t port) override {
    const std::uint8_t one = 1;
    (void)bpf_map__update_elem(skel_->maps.listen_ports, &port, sizeof port, &one, sizeof one, BPF_ANY);
  }

  void watch(std::uint64_t conn, trace::Leg leg, const boost::asio::ip::tcp::endpoint& local,
             const boost::asio::ip::tcp::endpoint& remote) override {
    const Key k = keyOf(local, remote);
    std::lock_guard<std::mutex> lock(mu_);
    if (legs_.size() >= kMaxLegs) return;  // bounded: such a leg goes without tcp.state events
    legs_[k] = Leg{conn, leg, text(local), text(remote), 0, std::nullopt, 0};
    by_conn_[conn].push_back(k);
    // The transitions that came first, in order: those with this 4-tuple and those of the same
    // socket made before its addresses were set (a child socket's LISTEN -> SYN_RECV). The
    // 4-tuple may have had an earlier life a moment ago (another process's connection, its port
    // since reused): only the transitions from this socket's own start (-> SYN_SENT or
    // -> SYN_RECV, the last one seen) are its.
    std::vector<std::uint64_t> sks;
    for (const auto& p : pending_)
      if (keyOf(p.raw) == k) sks.push_back(p.raw.sk);
    std::vector<Pending> keep;
    std::vector<RawEvent> mine;
    for (auto& p : pending_) {
      if (keyOf(p.raw) != k && std::find(sks.begin(), sks.end(), p.raw.sk) == sks.end()) keep.push_back(p);
      else keepLastLife(mine, p.raw);
    }
    pending_.swap(keep);
    for (const auto& e : mine) report(legs_.find(k), e);
  }

  void release(std::uint64_t conn) override {
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = by_conn_.find(conn);
    if (it == by_conn_.end()) return;
    for (const auto& k : it->second)
      if (auto l = legs_.find(k); l != legs_.end()) l->second.released = Steady::now();
    by_conn_.erase(it);
  }

 private:
  struct Leg {
    std::uint64_t conn = 0;
    trace::Leg leg = trace::Leg::None;
    std::string local, peer;
    std::uint64_t last_ns = 0;
    std::optional<Steady::time_point> released;
    std::uint64_t sk = 0;  // the kernel's socket, once known: another socket on the same 4-tuple is not this leg
  };
  struct Pending {
    RawEvent raw;
    Steady::time_point at;
  };

  static bool startsLife(const RawEvent& e) {
    return e.newstate == static_cast<unsigned>(analysis::TcpSt::SynSent) ||
           e.newstate == static_cast<unsigned>(analysis::TcpSt::SynRecv);
  }

  // Transitions of one socket address in order, kept from its latest start on: what came before
  // was an earlier socket's (the kernel reuses the address of a freed one).
  static void keepLastLife(std::vector<RawEvent>& life, const RawEvent& e) {
    if (startsLife(e)) life.assign(1, e);
    else if (!life.empty()) life.push_back(e);
  }

  static int onRaw(void* self, void* data, std::size_t size) {
    if (size < sizeof(RawEvent)) return 0;
    RawEvent e;
    std::memcpy(&e, data, sizeof e);
    static_cast<BpfWatch*>(self)->onEvent(e);
    return 0;
  }

  void onEvent(const RawEvent& e) {
    std::lock_guard<std::mutex> lock(mu_);
    if (e.oldstate == e.newstate) return;  // tcp_close() after shutdown(): FIN_WAIT1 again
    auto it = legs_.find(keyOf(e));
    // At CLOSE the kernel has already given the local port back: the socket's address says whose.
    if (auto sk = by_sk_.find(e.sk); it == legs_.end() && sk != by_sk_.end()) it = legs_.find(sk->second);
    // Another socket on this leg's 4-tuple (its port reused, or an earlier socket's late end) is
    // not this leg: it waits like any unknown one.
    if (it != legs_.end() && it->second.sk != 0 && it->second.sk != e.sk) it = legs_.end();
    if (it != legs_.end()) {
      // Earlier transitions of the same socket that came before its addresses were set
      // (CLOSE -> SYN_SENT has no local port yet) go first, but only those of its own life: the
      // kernel reuses a freed socket's address, and what waits under it may be an earlier
      // socket's (a connect that failed before any leg knew it). Once the leg has its socket, or
      // when this transition starts a life, whatever still waits under the address is older.
      std::vector<RawEvent> earlier;
      std::erase_if(pending_, [&](const Pending& p) {
        if (p.raw.sk != e.sk) return false;
        keepLastLife(earlier, p.raw);
        return true;
      });
      if (it->second.sk == 0 && !startsLife(e))
        for (const auto& p : earlier) report(it, p);
      return report(it, e);
    }
    if (pending_.size() < kMaxPending) pending_.push_back({e, Steady::now()});
  }

  // The kernel hands a closing socket to a timewait socket and reports the full socket's
  // FIN_WAIT2 (or CLOSING) -> CLOSE: without an error that is the entry into TIME_WAIT.
  void report(std::unordered_map<Key, Leg, KeyHash>::iterator it, const RawEvent& e) {
    Leg& l = it->second;
    if (e.oldstate == e.newstate) return;
    if (l.sk == 0) l.sk = e.sk;
    const bool closed = e.newstate == static_cast<unsigned>(analysis::TcpSt::Close);
    const bool time_wait = closed && e.err == 0 &&
                           (e.oldstate == static_cast<unsigned>(analysis::TcpSt::FinWait2) ||
                            e.oldstate == static_cast<unsigned>(analysis::TcpSt::Closing));
    trace::ev::TcpState s;
    s.from = analysis::tcpStateName(static_cast<int>(e.oldstate));
    s.to = time_wait ? "TIME_WAIT" : analysis::tcpStateName(static_cast<int>(e.newstate));
    s.source = "ebpf";
    if (closed) by_sk_.erase(e.sk);  // the kernel may reuse the address for another socket
    else by_sk_[e.sk] = it->first;
    if (l.last_ns != 0) s.since_ms = double(e.ns - l.last_ns) / 1e6;
    l.last_ns = e.ns;
    s.local = l.local;
    s.peer = l.peer;
    if (closed && e.err != 0) s.reset = e.err == ECONNRESET || e.err == EPIPE;
    const auto ago = std::chrono::nanoseconds(monotonicNs() - e.ns);
    const auto ts = trace::Clock::now() - std::chrono::duration_cast<trace::Clock::duration>(ago);
    tracer_.emit(trace::Event(ts, l.conn, l.leg, std::move(s)));
  }

  void expire() {
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = Steady::now();
    std::erase_if(legs_, [&](const auto& kv) { return kv.second.released && now - *kv.second.released > kKeptFor; });
    std::erase_if(pending_, [&](const Pending& p) { return now - p.at > kPendingFor; });
    std::erase_if(by_sk_, [&](const auto& kv) { return !legs_.contains(kv.second); });
  }

  void loop() {
    auto next_expiry = Steady::now();
    while (!stop_) {
      (void)ring_buffer__poll(rb_, 100);
      if (Steady::now() >= next_expiry) {
        expire();
        next_expiry = Steady::now() + std::chrono::seconds(1);
      }
    }
  }

  trace::Tracer& tracer_;
  tcp_state* skel_;
  ring_buffer* rb_ = nullptr;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::unordered_map<Key, Leg, KeyHash> legs_;
  std::unordered_map<std::uint64_t, std::vector<Key> > by_conn_;
  std::unordered_map<std::uint64_t, Key> by_sk_;  // kernel socket address -> its leg
  std::vector<Pending> pending_;
};

int quietLibbpf(libbpf_print_level, const char*, va_list) { return 0; }

}  // namespace

std::unique_ptr<TcpStateWatch> TcpStateWatch::start(trace::Tracer& tracer, std::string& why) {
  libbpf_set_print(quietLibbpf);  // the one-line reason below says it; libbpf's dump would not help
  tcp_state* skel = tcp_state__open();
  if (!skel) {
    why = "cannot open the eBPF program: " + std::string(std::strerror(errno));
    return nullptr;
  }
  skel->rodata->target_tgid = static_cast<std::uint32_t>(::getpid());
  if (int err = tcp_state__load(skel); err != 0) {
    why = "the kernel refused the eBPF program (" + std::string(std::strerror(-err)) +
          "; needs BTF and CAP_BPF with CAP_PERFMON, or root)";
    tcp_state__destroy(skel);
    return nullptr;
  }
  auto w = std::make_unique<BpfWatch>(tracer, skel);
  if (!w->attach(why)) return nullptr;
  return w;
}

}  // namespace tlstrace::net

#endif

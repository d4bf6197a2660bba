#include "net/capture.h"

#include <arpa/inet.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <tuple>

#include "analysis/tcp_flow.h"
#include "analysis/tcp_states.h"
#include "sinks/pcapng.h"
#include "wire/tcp_segment.h"

namespace tlstrace::net {

namespace {

using EpKey = std::tuple<bool, std::array<std::uint8_t, 16>, std::uint16_t>;
EpKey keyOf(const trace::Endpoint& e) { return {e.v6, e.addr, e.port}; }
EpKey keyOf(const wire::TcpSyn& s, bool source) {
  std::array<std::uint8_t, 16> a{};
  const auto& from = source ? s.src : s.dst;
  std::copy(from.begin(), from.begin() + (s.v6 ? 16 : 4), a.begin());
  return {s.v6, a, source ? s.src_port : s.dst_port};
}
using FlowKey = std::pair<EpKey, EpKey>;  // the lower endpoint first
FlowKey flowKey(EpKey a, EpKey b) { return a < b ? FlowKey{a, b} : FlowKey{b, a}; }

std::string hostText(const trace::Endpoint& e) {
  char buf[INET6_ADDRSTRLEN] = {};
  return inet_ntop(e.v6 ? AF_INET6 : AF_INET, e.addr.data(), buf, sizeof buf) ? buf : "";
}

double tvSeconds(const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; }

constexpr std::size_t kMaxPendingPerFlow = 64;  // segments of a leg not attached yet
constexpr std::size_t kMaxFlows = 65536;        // then new unattached ones are not kept
constexpr double kUnattachedLife = 10;          // s: a flow nobody attaches (someone else's traffic)
constexpr double kAfterClose = 3;               // s: a detached leg's last segments still count
constexpr double kPcapDelay = 0.3;              // s: packets wait for the secrets that decrypt them

class PcapCapture final : public PacketCapture {
 public:
  PcapCapture(pcap_t* p, trace::Tracer& tracer, sinks::PcapngSink* pcapng, std::vector<std::uint16_t> ports,
              bool derive_states)
      : p_(p),
        tracer_(tracer),
        pcapng_(pcapng),
        ports_(std::move(ports)),
        derive_states_(derive_states),
        wake_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~PcapCapture() override {
    stop_ = true;
    wake();
    if (thread_.joinable()) thread_.join();
    if (wake_ >= 0) ::close(wake_);
    pcap_close(p_);
  }

  bool start(std::string& error) {
    if (wake_ < 0) return error = "--capture: eventfd failed", false;
    if (!applyFilter(error)) return false;
    thread_ = std::thread([this] { run(); });
    return true;
  }

  void watch(const trace::Endpoint& dest, std::function<void()> ready) override {
    post(Command{Command::Watch, 0, trace::Leg::None, dest, {}, std::move(ready)});
  }
  void listenPort(std::uint16_t port) override {
    auto done = std::make_shared<std::promise<void>>();
    auto f = done->get_future();
    trace::Endpoint e;
    e.port = port;
    post(Command{Command::Port, 0, trace::Leg::None, e, {}, [done] { done->set_value(); }});
    (void)f.wait_for(std::chrono::seconds(1));
  }
  void unwatch(const trace::Endpoint& dest) override {
    post(Command{Command::Unwatch, 0, trace::Leg::None, dest, {}, {}});
  }
  void attach(std::uint64_t conn, trace::Leg leg, const trace::Endpoint& local,
              const trace::Endpoint& remote) override {
    post(Command{Command::Attach, conn, leg, local, remote, {}});
  }
  void detach(std::uint64_t conn, trace::Leg leg) override { post(Command{Command::Detach, conn, leg, {}, {}, {}}); }

 private:
  struct Command {
    enum Kind { Watch, Unwatch, Attach, Detach, Port } kind;
    std::uint64_t conn;
    trace::Leg leg;
    trace::Endpoint a, b;
    std::function<void()> ready;
  };
  struct Pending {
    trace::Clock::time_point ts;
    wire::TcpSyn seg;
    analysis::SegmentAnalysis analysis;
    std::vector<std::uint8_t> frame;
  };
  struct Flow {
    analysis::TcpFlowAnalyzer analyzer;
    bool attached = false;
    std::uint64_t conn = 0;
    trace::Leg leg = trace::Leg::None;
    EpKey local{};
    std::vector<Pending> pending;
    double last_seen = 0;
    double detached_at = 0;  // 0: not detached
    // tcp.state from the segments (analysis/tcp_states.h), when asked for: the proxy's end.
    std::optional<analysis::TcpStateTracker> states;
    std::optional<analysis::TcpTransition> last_state;
  };

  void post(Command c) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      commands_.push_back(std::move(c));
    }
    wake();
  }
  void wake() {
    const std::uint64_t one = 1;
    if (wake_ >= 0) (void)!::write(wake_, &one, sizeof one);
  }

  // BPF (pcap-filter(7)): the listeners' ports, and each watched destination.
  bool applyFilter(std::string& error) {
    std::string f = "tcp and (";
    bool first = true;
    auto term = [&](const std::string& t) { f += (first ? "" : " or ") + t, first = false; };
    for (auto port : ports_) term("port " + std::to_string(port));
    for (const auto& [key, d] : dests_)
      term("(host " + hostText(d.ep) + " and port " + std::to_string(d.ep.port) + ")");
    f += first ? "port 0)" : ")";
    bpf_program prog{};
    if (pcap_compile(p_, &prog, f.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0)
      return error = "--capture: filter '" + f + "': " + pcap_geterr(p_), false;
    const bool ok = pcap_setfilter(p_, &prog) == 0;
    pcap_freecode(&prog);
    if (!ok) return error = "--capture: filter '" + f + "': " + pcap_geterr(p_), false;
    return true;
  }

  void run() {
    const int fd = pcap_get_selectable_fd(p_);
    while (!stop_) {
      applyCommands();
      pollfd fds[2] = {{fd, POLLIN, 0}, {wake_, POLLIN, 0}};
      (void)::poll(fds, 2, 100);
      if (fds[1].revents & POLLIN) {
        std::uint64_t n = 0;
        (void)!::read(wake_, &n, sizeof n);
      }
      applyCommands();  // attachments before the segments that may need them
      (void)pcap_dispatch(p_, -1, &PcapCapture::onPacket, reinterpret_cast<u_char*>(this));
      flushOut(false);
    }
    (void)pcap_dispatch(p_, -1, &PcapCapture::onPacket, reinterpret_cast<u_char*>(this));
    applyCommands();
    flushOut(true);
  }

  void applyCommands() {
    std::vector<Command> cmds;
    {
      std::lock_guard<std::mutex> lock(mu_);
      cmds.swap(commands_);
    }
    bool refilter = false;
    std::vector<std::function<void()>> ready;
    for (auto& c : cmds) {
      switch (c.kind) {
        case Command::Watch: {
          auto& d = dests_[keyOf(c.a)];
          refilter |= d.users++ == 0;
          d.ep = c.a;
          d.idle_since = 0;
          if (c.ready) ready.push_back(std::move(c.ready));
          break;
        }
        case Command::Unwatch:
          if (auto it = dests_.find(keyOf(c.a)); it != dests_.end() && it->second.users > 0 && --it->second.users == 0)
            it->second.idle_since = now();
          break;
        case Command::Attach: attachFlow(c); break;
        case Command::Port:
          if (std::find(ports_.begin(), ports_.end(), c.a.port) == ports_.end())
            ports_.push_back(c.a.port), refilter = true;
          ready.push_back(std::move(c.ready));
          break;
        case Command::Detach:
          if (auto it = by_leg_.find({c.conn, c.leg}); it != by_leg_.end()) {
            if (auto f = flows_.find(it->second); f != flows_.end()) f->second.detached_at = now();
            by_leg_.erase(it);
          }
          break;
      }
    }
    // A destination nobody uses any more leaves the filter once its last segments are in.
    for (auto it = dests_.begin(); it != dests_.end();) {
      if (it->second.users == 0 && it->second.idle_since && now() - it->second.idle_since > kAfterClose) {
        it = dests_.erase(it);
        refilter = true;
      } else {
        ++it;
      }
    }
    std::string error;
    if (refilter && !applyFilter(error)) filter_error_ = error;  // the old filter stays
    for (auto& r : ready) r();
  }

  void attachFlow(const Command& c) {
    const FlowKey key = flowKey(keyOf(c.a), keyOf(c.b));
    Flow& f = flows_[key];
    f.attached = true, f.conn = c.conn, f.leg = c.leg, f.local = keyOf(c.a), f.detached_at = 0;
    f.last_seen = now();
    by_leg_[{c.conn, c.leg}] = key;
    // The proxy opens the upstream leg (SYN_SENT first) and answers on the client leg (LISTEN).
    if (derive_states_) f.states.emplace(c.leg == trace::Leg::Upstream);
    for (auto& p : f.pending) emit(f, p.ts, p.seg, p.analysis, std::move(p.frame));
    f.pending.clear();
  }

  static void onPacket(u_char* user, const pcap_pkthdr* h, const u_char* bytes) {
    reinterpret_cast<PcapCapture*>(user)->packet(*h, wire::Bytes(bytes, h->caplen));
  }

  void packet(const pcap_pkthdr& h, wire::Bytes frame) {
    auto d = wire::decodeFrame(kCaptureLinktype, frame);
    if (!d.segment) return;
    const wire::TcpSyn& s = d.segment->tcp;
    const FlowKey key = flowKey(keyOf(s, true), keyOf(s, false));
    const double t = tvSeconds(h.ts);
    auto it = flows_.find(key);
    // A new SYN on the 4-tuple of a leg that is over starts a new connection (port reuse).
    const bool fresh_syn = (s.flags & 0x12) == 0x02;
    if (it != flows_.end() && fresh_syn && it->second.detached_at) it = flows_.erase(it), it = flows_.end();
    if (it == flows_.end()) {
      if (flows_.size() >= kMaxFlows) return;
      it = flows_.emplace(key, Flow{}).first;
    }
    Flow& f = it->second;
    f.last_seen = t;
    const auto a = f.analyzer.add(s, t);
    const auto ts = trace::Clock::time_point(std::chrono::duration_cast<trace::Clock::duration>(
        std::chrono::seconds(h.ts.tv_sec) + std::chrono::microseconds(h.ts.tv_usec)));
    std::vector<std::uint8_t> copy;
    if (pcapng_) copy.assign(frame.begin(), frame.end());
    if (f.attached) return emit(f, ts, s, a, std::move(copy));
    if (f.pending.size() < kMaxPendingPerFlow) f.pending.push_back(Pending{ts, s, a, std::move(copy)});
  }

  void emit(Flow& f, trace::Clock::time_point ts, const wire::TcpSyn& s, const analysis::SegmentAnalysis& a,
            std::vector<std::uint8_t> frame) {
    const bool inbound = keyOf(s, false) == f.local;
    auto segment = analysis::segmentEvent(s, a, inbound);
    std::optional<std::pair<std::string, std::string>> ends;  // (local, peer), for tcp.state
    if (f.states) ends.emplace(inbound ? segment.dst : segment.src, inbound ? segment.src : segment.dst);
    batch_.emplace_back(ts, f.conn, f.leg, std::move(segment));
    if (ends) emitStates(f, ts, static_cast<std::uint8_t>(s.flags & 0xff), inbound, *ends);
    if (pcapng_ && !frame.empty()) delayed_.push_back(Delayed{now() + kPcapDelay, ts, std::move(frame)});
  }

  void emitStates(Flow& f, trace::Clock::time_point ts, std::uint8_t flags, bool inbound,
                  const std::pair<std::string, std::string>& ends) {
    std::array<analysis::TcpTransition, 2> steps{};
    const std::size_t n = f.states->add({!inbound, flags, seconds(ts) * 1000}, steps);
    for (std::size_t i = 0; i < n; ++i) {
      auto e = analysis::tcpStateEvent(steps[i], f.last_state ? &*f.last_state : nullptr,
                                       inbound && (flags & analysis::kRst) != 0);
      e.local = ends.first, e.peer = ends.second;
      batch_.emplace_back(ts, f.conn, f.leg, std::move(e));
      f.last_state = steps[i];
    }
  }

  void flushOut(bool all) {
    if (!batch_.empty()) tracer_.submit(batch_);
    const double t = now();
    while (!delayed_.empty() && (all || delayed_.front().due <= t)) {
      const auto us = std::chrono::duration_cast<std::chrono::microseconds>(delayed_.front().ts.time_since_epoch());
      pcapng_->captured(static_cast<std::uint64_t>(us.count()), delayed_.front().frame);
      delayed_.pop_front();
    }
    if (t - last_sweep_ < 1) return;
    last_sweep_ = t;
    for (auto it = flows_.begin(); it != flows_.end();) {
      const Flow& f = it->second;
      const bool gone =
          f.attached ? (f.detached_at && t - f.detached_at > kAfterClose) : t - f.last_seen > kUnattachedLife;
      it = gone ? flows_.erase(it) : std::next(it);
    }
  }

  static double now() { return seconds(trace::Clock::now()); }
  static double seconds(trace::Clock::time_point tp) {
    return std::chrono::duration<double>(tp.time_since_epoch()).count();
  }

  struct Dest {
    trace::Endpoint ep;
    unsigned users = 0;
    double idle_since = 0;
  };
  struct Delayed {
    double due;
    trace::Clock::time_point ts;
    std::vector<std::uint8_t> frame;
  };

  pcap_t* p_;
  trace::Tracer& tracer_;
  sinks::PcapngSink* pcapng_;
  std::vector<std::uint16_t> ports_;
  bool derive_states_;
  int wake_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<Command> commands_;  // under mu_
  // The capture thread's own:
  std::map<EpKey, Dest> dests_;
  std::map<FlowKey, Flow> flows_;
  std::map<std::pair<std::uint64_t, trace::Leg>, FlowKey> by_leg_;
  std::vector<trace::Event> batch_;
  std::deque<Delayed> delayed_;
  double last_sweep_ = 0;
  std::string filter_error_;
};

}  // namespace

std::unique_ptr<PacketCapture> openCapture(trace::Tracer& tracer, sinks::PcapngSink* pcap,
                                           std::vector<std::uint16_t> listen_ports, std::string& error,
                                           bool derive_states) {
  char err[PCAP_ERRBUF_SIZE] = {};
  pcap_t* p = pcap_create("any", err);
  if (!p) return error = std::string("--capture: ") + err, nullptr;
  // Whole segments (the pcapng carries them), in immediate mode: TPACKET_V3's blocks are handed
  // over when full or when the kernel's block timer retires them, and on this kernel (6.18) that
  // timer does not fire reliably on an idle ring: the last segments of a quiet moment then waited
  // for the next traffic (seen as connections whose segments never came). Immediate mode gives
  // each packet a frame of the snap length: 64 KiB (the largest IPv4 packet, GRO included) plus
  // the cooked header, and a ring of 128 MiB (~2,000 frames) for the bursts of a busy proxy.
  (void)pcap_set_snaplen(p, 65535 + 64);
  (void)pcap_set_immediate_mode(p, 1);
  (void)pcap_set_buffer_size(p, 128 << 20);
  const int rc = pcap_activate(p);
  if (rc < 0) {
    const bool perm = rc == PCAP_ERROR_PERM_DENIED;
    error = std::string("--capture: ") +
            (perm ? "capturing packets needs CAP_NET_RAW (run as root, or setcap cap_net_raw+ep on the binary)"
                  : std::string("cannot open the capture: ") + pcap_geterr(p) + " (it needs CAP_NET_RAW)");
    pcap_close(p);
    return nullptr;
  }
  if (pcap_datalink(p) != static_cast<int>(kCaptureLinktype) && pcap_set_datalink(p, kCaptureLinktype) != 0) {
    error = "--capture: the \"any\" device does not give Linux cooked captures";
    pcap_close(p);
    return nullptr;
  }
  if (pcap_setnonblock(p, 1, err) != 0) {
    error = std::string("--capture: ") + err;
    pcap_close(p);
    return nullptr;
  }
  auto c = std::make_unique<PcapCapture>(p, tracer, pcap, std::move(listen_ports), derive_states);
  if (!c->start(error)) return nullptr;
  return c;
}

}  // namespace tlstrace::net

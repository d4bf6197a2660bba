#include "net/tcp_probe.h"

#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstring>
#include <fstream>

#include "trace/event.h"
#include "trace/tcp_events.h"

namespace tlstrace::net {

namespace {

// glibc's tcp_info stops at tcpi_total_retrans; the kernel's goes on (Linux 4.1+: bytes and
// segments; 5.4+: out-of-order packets received), append-only, and fills what the length asked
// for allows (include/uapi/linux/tcp.h).
struct TcpInfoExt {
  tcp_info base;
  std::uint64_t pacing_rate, max_pacing_rate, bytes_acked, bytes_received;
  std::uint32_t segs_out, segs_in;
  std::uint32_t notsent_bytes, min_rtt, data_segs_in, data_segs_out;
  std::uint64_t delivery_rate, busy_time, rwnd_limited, sndbuf_limited;
  std::uint32_t delivered, delivered_ce;
  std::uint64_t bytes_sent, bytes_retrans;
  std::uint32_t dsack_dups, reord_seen, rcv_ooopack;
};

constexpr std::uint32_t kInfiniteSsthresh = 0x7fffffff;  // TCP_INFINITE_SSTHRESH: still in slow start

std::uint64_t readNumber(const char* path) {
  std::ifstream f(path);
  std::uint64_t v = 0;
  f >> v;
  return v;
}

// The next space-separated word of `s`, taken off its front ("" at the end).
std::string_view nextWord(std::string_view& s) {
  const auto start = s.find_first_not_of(' ');
  if (start == std::string_view::npos) return s = {};
  s.remove_prefix(start);
  const std::string_view word = s.substr(0, s.find(' '));
  s.remove_prefix(word.size());
  return word;
}

// The next line of `s` (without its newline), taken off its front.
std::string_view nextLine(std::string_view& s) {
  const std::string_view line = s.substr(0, s.find('\n'));
  s.remove_prefix(std::min(s.size(), line.size() + 1));
  return line;
}

// ListenOverflows and ListenDrops of /proc/net/netstat's TcpExt lines (a line of names, then a
// line of values): the network namespace's counters since it was made. Read twice a second: one
// read(2) into the stack and a scan (through iostreams it cost ~140 K instructions a time).
bool readListenCounters(std::uint64_t& overflows, std::uint64_t& drops) {
  const int fd = ::open("/proc/net/netstat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::array<char, 16 * 1024> buf;  // (the file is ~5 KB; TcpExt comes first)
  std::size_t len = 0;
  for (ssize_t n = 0; len < buf.size() && (n = ::read(fd, buf.data() + len, buf.size() - len)) > 0;)
    len += static_cast<std::size_t>(n);
  ::close(fd);
  std::string_view text(buf.data(), len);
  while (!text.empty()) {
    std::string_view names = nextLine(text), values = nextLine(text);
    if (!names.starts_with("TcpExt:")) continue;
    bool got_o = false, got_d = false;
    for (std::string_view name = nextWord(names), value = nextWord(values); !name.empty() && !value.empty();
         name = nextWord(names), value = nextWord(values)) {
      std::uint64_t* to = name == "ListenOverflows" ? &overflows : name == "ListenDrops" ? &drops : nullptr;
      if (!to) continue;
      const auto r = std::from_chars(value.data(), value.data() + value.size(), *to);
      (to == &overflows ? got_o : got_d) = r.ec == std::errc{};
    }
    return got_o && got_d;
  }
  return false;
}

// A sock_diag request for TCP sockets of `family` in `states` (a mask of 1 << TCP_*).
struct DiagRequest {
  nlmsghdr nlh;
  inet_diag_req_v2 req;
};
DiagRequest diagRequest(int family, std::uint16_t flags, std::uint32_t states) {
  DiagRequest msg{};
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = static_cast<std::uint16_t>(NLM_F_REQUEST | flags);
  msg.req.sdiag_family = static_cast<std::uint8_t>(family);
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = states;
  return msg;
}

// The accept queue of the listening socket `fd` as sock_diag reports it (ss's Recv-Q and Send-Q
// for a listener): the connections waiting for accept, and the queue's cap. The dump of the
// family's listeners is matched on the socket's inode. Bounded: at most 64 replies are read.
bool acceptQueue(int fd, int family, std::uint64_t& queued, std::uint64_t& cap) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return false;
  const int nl = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) return false;
  const DiagRequest msg = diagRequest(family, NLM_F_DUMP, 1u << TCP_LISTEN);
  bool found = false, done = false;
  if (::send(nl, &msg, sizeof msg, 0) == static_cast<ssize_t>(sizeof msg)) {
    alignas(nlmsghdr) static thread_local std::array<char, 32 * 1024> buf;
    for (int reads = 0; reads < 64 && !done; ++reads) {
      const ssize_t n = ::recv(nl, buf.data(), buf.size(), 0);
      if (n <= 0) break;
      int left = static_cast<int>(n);
      for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
        if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
          done = true;
          break;
        }
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg))) continue;
        const auto* d = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
        if (d->idiag_inode != st.st_ino) continue;
        queued = d->idiag_rqueue;
        cap = d->idiag_wqueue;
        found = true;
      }
    }
  }
  ::close(nl);
  return found;
}

}  // namespace

std::optional<bool> timeWaitHeld(const sockaddr_storage& local, const sockaddr_storage& peer) {
  if (local.ss_family != peer.ss_family || (local.ss_family != AF_INET && local.ss_family != AF_INET6))
    return std::nullopt;
  DiagRequest msg = diagRequest(local.ss_family, 0, 1u << TCP_TIME_WAIT);  // (no dump: the kernel looks the 4-tuple up)
  msg.req.id.idiag_cookie[0] = msg.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  auto put = [](const sockaddr_storage& a, __be16& port, __be32* addr) {
    if (a.ss_family == AF_INET) {
      const auto& in = reinterpret_cast<const sockaddr_in&>(a);
      port = in.sin_port;
      addr[0] = in.sin_addr.s_addr;
    } else {
      const auto& in6 = reinterpret_cast<const sockaddr_in6&>(a);
      port = in6.sin6_port;
      std::memcpy(addr, &in6.sin6_addr, sizeof in6.sin6_addr);
    }
  };
  put(local, msg.req.id.idiag_sport, msg.req.id.idiag_src);
  put(peer, msg.req.id.idiag_dport, msg.req.id.idiag_dst);
  const int nl = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) return std::nullopt;
  int held = -1;  // (not an optional: g++ 12 sees one as maybe-uninitialized here)
  if (::send(nl, &msg, sizeof msg, 0) == static_cast<ssize_t>(sizeof msg)) {
    alignas(nlmsghdr) std::array<char, 1024> buf;
    const ssize_t n = ::recv(nl, buf.data(), buf.size(), 0);
    int left = static_cast<int>(n);
    if (n > 0)
      if (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, left)) {
        // ENOENT: no socket of the kernel's has the 4-tuple; other errors leave the answer open.
        if (h->nlmsg_type == NLMSG_ERROR && h->nlmsg_len >= NLMSG_LENGTH(sizeof(nlmsgerr)))
          held = static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error == -ENOENT ? 0 : -1;
        else if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY && h->nlmsg_len >= NLMSG_LENGTH(sizeof(inet_diag_msg)))
          held = static_cast<const inet_diag_msg*>(NLMSG_DATA(h))->idiag_state == TCP_TIME_WAIT ? 1 : 0;
      }
  }
  ::close(nl);
  if (held < 0) return std::nullopt;
  return held == 1;
}

bool saveSyns(int listen_fd) {
  const int on = 1;
  return ::setsockopt(listen_fd, IPPROTO_TCP, TCP_SAVE_SYN, &on, sizeof on) == 0;
}

std::vector<std::uint8_t> savedSyn(int fd) {
  // An IPv6 header with extension headers and a full TCP header fit (the kernel refuses a
  // shorter buffer with ENOBUFS and says how long it is).
  std::vector<std::uint8_t> buf(512);
  socklen_t len = static_cast<socklen_t>(buf.size());
  if (::getsockopt(fd, IPPROTO_TCP, TCP_SAVED_SYN, buf.data(), &len) != 0) return {};
  buf.resize(len);
  return buf;
}

std::optional<trace::ev::TcpInfo> tcpInfo(int fd, std::string_view at) {
  TcpInfoExt x{};
  socklen_t len = sizeof x;
  if (fd < 0 || ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &x, &len) != 0 || len < sizeof x.base) return std::nullopt;
  const tcp_info& i = x.base;
  trace::ev::TcpInfo e;
  e.at = std::string(at);
  e.state = std::string(trace::tcpStateName(i.tcpi_state));
  e.rtt_ms = i.tcpi_rtt / 1000.0;  // microseconds
  e.rttvar_ms = i.tcpi_rttvar / 1000.0;
  e.rto_ms = i.tcpi_rto / 1000.0;
  e.snd_mss = i.tcpi_snd_mss;
  e.rcv_mss = i.tcpi_rcv_mss;
  e.advmss = i.tcpi_advmss;
  e.pmtu = i.tcpi_pmtu;
  e.cwnd = i.tcpi_snd_cwnd;
  if (i.tcpi_snd_ssthresh < kInfiniteSsthresh) e.ssthresh = i.tcpi_snd_ssthresh;
  e.retransmits = i.tcpi_retransmits;
  e.total_retrans = i.tcpi_total_retrans;
  // (older kernels stop before the byte and segment counters, or before rcv_ooopack)
  if (len >= offsetof(TcpInfoExt, segs_in) + sizeof x.segs_in) {
    e.bytes_acked = x.bytes_acked;
    e.bytes_received = x.bytes_received;
    e.segs_out = x.segs_out;
    e.segs_in = x.segs_in;
  }
  if (len >= offsetof(TcpInfoExt, rcv_ooopack) + sizeof x.rcv_ooopack) e.rcv_ooopack = x.rcv_ooopack;
  e.sack = (i.tcpi_options & TCPI_OPT_SACK) != 0;
  e.timestamps = (i.tcpi_options & TCPI_OPT_TIMESTAMPS) != 0;
  e.ecn = (i.tcpi_options & TCPI_OPT_ECN) != 0;
  if (i.tcpi_options & TCPI_OPT_WSCALE) {
    e.snd_wscale = i.tcpi_snd_wscale;
    e.rcv_wscale = i.tcpi_rcv_wscale;
  }
  return e;
}

ListenMonitor::ListenMonitor(boost::asio::io_context& ctx, trace::Tracer& tracer) : timer_(ctx), tracer_(tracer) {}

void ListenMonitor::start(int listen_fd, const boost::asio::ip::tcp::endpoint& ep, std::size_t backlog) {
  fd_ = listen_fd;
  const auto addr = ep.address().to_string();
  listen_ = (ep.address().is_v6() ? "[" + addr + "]" : addr) + ":" + std::to_string(ep.port());
  last_.backlog = backlog;
  last_.somaxconn = readNumber("/proc/sys/net/core/somaxconn");
  last_.tcp_max_syn_backlog = readNumber("/proc/sys/net/ipv4/tcp_max_syn_backlog");
  (void)readListenCounters(base_overflows_, base_drops_);
  running_ = true;
  check("start", true);
  arm();
}

void ListenMonitor::stop() {
  if (!running_) return;
  running_ = false;
  timer_.cancel();
  check("stop", false);
}

// Twice a second: a file read, and a sock_diag dump only when the counters grew.
void ListenMonitor::arm() {
  timer_.expires_after(std::chrono::milliseconds(500));
  timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || !running_) return;
    check("overflow", false);
    arm();
  });
}

void ListenMonitor::check(const char* reason, bool always) {
  std::uint64_t overflows = 0, drops = 0;
  if (!readListenCounters(overflows, drops)) overflows = base_overflows_, drops = base_drops_;
  trace::ev::TcpListen e = last_;
  e.listen = listen_;
  e.reason = reason;
  e.listen_overflows = overflows - base_overflows_;
  e.listen_drops = drops - base_drops_;
  e.new_overflows = e.listen_overflows - last_.listen_overflows;
  e.new_drops = e.listen_drops - last_.listen_drops;
  if (!always && e.new_overflows == 0 && e.new_drops == 0) return;
  const int family = listen_.front() == '[' ? AF_INET6 : AF_INET;
  (void)acceptQueue(fd_, family, e.accept_queue, e.accept_queue_max);
  last_ = e;
  tracer_.emit(trace::Event(trace::Clock::now(), 0, trace::Leg::None, std::move(e)));
}

}  // namespace tlstrace::net

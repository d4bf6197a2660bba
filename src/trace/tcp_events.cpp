#include "trace/tcp_events.h"

#include <arpa/inet.h>

#include <iterator>

#include "wire/tcp_syn.h"

namespace tlstrace::trace {

namespace {

std::string endpointText(const wire::TcpSyn& s, bool source) {
  const auto& a = source ? s.src : s.dst;
  char buf[INET6_ADDRSTRLEN] = {};
  if (!inet_ntop(s.v6 ? AF_INET6 : AF_INET, a.data(), buf, sizeof buf)) return "?";
  const std::string port = std::to_string(source ? s.src_port : s.dst_port);
  return s.v6 ? "[" + std::string(buf) + "]:" + port : std::string(buf) + ":" + port;
}

Json optionJson(const wire::TcpOption& o) {
  Json j = Json::object();
  j.set("kind", static_cast<long long>(o.kind));
  const auto name = wire::tcpOptionName(o.kind);
  if (!name.empty()) j.set("name", name);
  const auto& d = o.data;
  if (o.kind == 2 && d.size() == 2) {
    j.set("value", static_cast<long long>(d[0] << 8 | d[1]));
  } else if (o.kind == 3 && d.size() == 1) {
    j.set("shift", static_cast<long long>(d[0]));
  } else if (o.kind == 8 && d.size() == 8) {
    const auto u32 = [&d](std::size_t at) {
      return static_cast<unsigned long long>(std::uint32_t{d[at]} << 24 | std::uint32_t{d[at + 1]} << 16 |
                                             std::uint32_t{d[at + 2]} << 8 | d[at + 3]);
    };
    j.set("tsval", u32(0));
    j.set("tsecr", u32(4));
  } else if (o.kind > 1 && !(o.kind == 4 && d.empty())) {
    j.set("length", static_cast<long long>(o.length));
    j.set("data", wire::toHex(wire::Bytes(d.data(), d.size())));
  }
  return j;
}

}  // namespace

ev::TcpSyn synEvent(wire::Bytes saved_syn) {
  ev::TcpSyn e;
  const auto d = wire::decodeSavedSyn(saved_syn);
  if (!d.syn) {
    e.error = d.error;
    e.hex = wire::toHex(saved_syn, 512);
    return e;
  }
  const wire::TcpSyn& s = *d.syn;
  e.src = endpointText(s, true);
  e.dst = endpointText(s, false);
  e.seq = s.seq;
  e.win = s.window;
  e.flags = wire::tcpFlagsText(s.flags);
  e.ttl = s.ttl;
  for (const auto& o : s.options) e.options.push(optionJson(o));
  if (s.options_truncated) e.error = "the last option runs past the TCP header";
  if (s.mss) e.mss = *s.mss;
  if (s.wscale) e.wscale = *s.wscale;
  e.sack_perm = s.sack_perm;
  e.ts_val = s.ts_val;
  e.ts_ecr = s.ts_ecr;
  return e;
}

std::string_view tcpStateName(int state) {
  static constexpr std::string_view kNames[] = {"",          "ESTABLISHED", "SYN_SENT",    "SYN_RECV",   "FIN_WAIT1",
                                                "FIN_WAIT2", "TIME_WAIT",   "CLOSE",       "CLOSE_WAIT", "LAST_ACK",
                                                "LISTEN",    "CLOSING",     "NEW_SYN_RECV"};
  return state > 0 && state < static_cast<int>(std::size(kNames)) ? kNames[state] : std::string_view{};
}

}  // namespace tlstrace::trace

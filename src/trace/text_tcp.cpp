// The TCP ladder of the default text trace: per leg, the segments and kernel facts known without a
// capture (the client's saved SYN, TCP_INFO at establishment and close, who closed first), one line
// each, arrows as in the rest of the trace ("<-" received by the proxy, "->" sent by it). Captured
// segments (tcp.segment) and state changes (tcp.state) plug in here with a case of their own.
#include <cstdio>

#include "trace/escape.h"
#include "trace/text_internal.h"

namespace tlstrace::trace::text_detail {

namespace {

// Milliseconds to the microsecond, without trailing zeros ("200", "0.019").
std::string ms(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  std::string s = buf;
  while (s.size() > 1 && s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

// tcpdump's option list: [mss 65495,sackOK,TS val 1 ecr 0,nop,wscale 7]; kinds it has no name for
// by number with their data.
std::string optionsText(const Json& options) {
  std::string out = "[";
  for (const auto& o : options.asArray()) {
    if (out.size() > 1) out += ',';
    const std::int64_t kind = intField(o, "kind");
    switch (kind) {
      case 0: out += "eol"; break;
      case 1: out += "nop"; break;
      case 2: out += "mss " + std::to_string(intField(o, "value")); break;
      case 3: out += "wscale " + std::to_string(intField(o, "shift")); break;
      case 4: out += "sackOK"; break;
      case 8:
        out += "TS val " + std::to_string(field(o, "tsval").asUint()) + " ecr " +
               std::to_string(field(o, "tsecr").asUint());
        break;
      default: {
        const std::string name = rawStr(o, "name");
        out += name.empty() ? "opt-" + std::to_string(kind) : esc(name) + " (" + std::to_string(kind) + ")";
        if (const std::string data = rawStr(o, "data"); !data.empty()) out += " 0x" + esc(data);
      }
    }
  }
  return out + "]";
}

void synLine(const ev::TcpSyn& s, std::string& out) {
  if (s.error && s.src.empty()) {
    out += "<- SYN (not decoded: " + esc(*s.error) + ") " + esc(s.hex.value_or("")) + "\n";
    return;
  }
  out += "<- " + esc(s.flags) + " seq=" + std::to_string(s.seq) + " win=" + std::to_string(s.win) + " " +
         optionsText(s.options) + " " + esc(s.src) + " > " + esc(s.dst) + ", ttl " + std::to_string(s.ttl);
  if (s.error) out += " (" + esc(*s.error) + ")";
  out += '\n';
}

std::string negotiated(const ev::TcpInfo& i) {
  std::string out = "[";
  if (i.sack) out += "sackOK,";
  if (i.timestamps) out += "TS,";
  if (i.snd_wscale && i.rcv_wscale)
    out += "wscale snd " + std::to_string(*i.snd_wscale) + " rcv " + std::to_string(*i.rcv_wscale) + ",";
  else out += "no wscale,";
  out += i.ecn ? "ECN]" : "no ECN]";
  return out;
}

void infoLine(const Event& e, const ev::TcpInfo& i, std::string& out) {
  const std::string rtt = "rtt " + ms(i.rtt_ms) + "/" + ms(i.rttvar_ms) + " ms, rto " + ms(i.rto_ms) + " ms";
  if (i.at == "established") {
    // The handshake's other segments: which way they went follows from who connected.
    out += e.leg == Leg::Upstream ? "-> SYN, <- SYN,ACK, -> ACK: " : "-> SYN,ACK, <- ACK: ";
    out += esc(i.state) + " " + negotiated(i) + " mss " + std::to_string(i.snd_mss) + " out " +
           std::to_string(i.rcv_mss) + " in (advmss " + std::to_string(i.advmss) + ", pmtu " + std::to_string(i.pmtu) +
           "), " + rtt + ", cwnd " + std::to_string(i.cwnd) + "\n";
    return;
  }
  out += "   " + esc(i.state) + " at " + esc(i.at) + ": " + rtt + ", retrans " + std::to_string(i.retransmits) + " (" +
         std::to_string(i.total_retrans) + " in all), segs " + std::to_string(i.segs_out) + " out " +
         std::to_string(i.segs_in) + " in, " + std::to_string(i.bytes_acked) + " B acked, " +
         std::to_string(i.bytes_received) + " B received, cwnd " + std::to_string(i.cwnd);
  if (i.ssthresh) out += ", ssthresh " + std::to_string(*i.ssthresh);
  out += '\n';
}

// Who ended the leg first, as a segment: the peer's FIN or RST came in ("<-"), or the proxy's
// went out ("->"; after a timeout or an error too). What the other side sent then is not known
// without a capture.
void closeLine(const Event& e, const ev::TcpClose& c, std::string& out) {
  const bool peer = c.by == "peer";
  const std::string who = peer ? (e.leg == Leg::Upstream ? "the server" : "the client") : "the proxy";
  const std::string seg = c.how == "rst" ? "RST" : c.how == "fin" ? "FIN" : "FIN (" + esc(c.how) + ")";
  out += std::string(peer ? "<- " : "-> ") + seg + " first, from " + who + '\n';
}

void listenLine(const ev::TcpListen& l, std::string& out) {
  out += "== tcp.listen " + esc(l.listen) + " (" + esc(l.reason) + "): accept queue " + std::to_string(l.accept_queue) +
         "/" + std::to_string(l.accept_queue_max) + " (backlog " + std::to_string(l.backlog) + ", somaxconn " +
         std::to_string(l.somaxconn) + ", tcp_max_syn_backlog " + std::to_string(l.tcp_max_syn_backlog) +
         "), listen overflows " + std::to_string(l.listen_overflows) + " (+" + std::to_string(l.new_overflows) +
         "), drops " + std::to_string(l.listen_drops) + " (+" + std::to_string(l.new_drops) + ")\n";
}

}  // namespace

LadderStep appendTcpLadder(const Event& e, const std::string& prefix, std::string& out) {
  if (const auto* s = e.as<ev::TcpSyn>()) {
    out += prefix;
    synLine(*s, out);
    return LadderStep::Done;
  }
  if (const auto* i = e.as<ev::TcpInfo>()) {
    out += prefix;
    infoLine(e, *i, out);
    return LadderStep::Done;
  }
  if (const auto* l = e.as<ev::TcpListen>()) {
    out += prefix;
    listenLine(*l, out);
    return LadderStep::Done;
  }
  if (const auto* c = e.as<ev::TcpClose>()) {
    out += prefix;
    closeLine(e, *c, out);
    return LadderStep::ThenFields;
  }
  return LadderStep::NotTcp;
}

}  // namespace tlstrace::trace::text_detail

#include "sinks/pcapng.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "sinks/sinks.h"

namespace tlstrace::sinks {

namespace pcapng {

namespace {

void u16(std::vector<std::uint8_t>& b, std::uint16_t v) {
  b.push_back(static_cast<std::uint8_t>(v));
  b.push_back(static_cast<std::uint8_t>(v >> 8));
}
void u32(std::vector<std::uint8_t>& b, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void pad4(std::vector<std::uint8_t>& b) {
  while (b.size() % 4) b.push_back(0);
}
// Option: code, length, value padded to 32 bits (pcapng section 3.5).
void option(std::vector<std::uint8_t>& b, std::uint16_t code, std::string_view value) {
  u16(b, code);
  u16(b, static_cast<std::uint16_t>(value.size()));
  b.insert(b.end(), value.begin(), value.end());
  pad4(b);
}
// Wraps a body into a block: type, total length, body, total length (section 3.1).
std::vector<std::uint8_t> block(std::uint32_t type, const std::vector<std::uint8_t>& body) {
  std::vector<std::uint8_t> b;
  const auto total = static_cast<std::uint32_t>(12 + body.size());
  u32(b, type);
  u32(b, total);
  b.insert(b.end(), body.begin(), body.end());
  u32(b, total);
  return b;
}

// RFC 1071 one's-complement sum.
std::uint32_t sum16(std::span<const std::uint8_t> d, std::uint32_t acc = 0) {
  for (std::size_t i = 0; i + 1 < d.size(); i += 2) acc += static_cast<std::uint32_t>((d[i] << 8) | d[i + 1]);
  if (d.size() % 2) acc += static_cast<std::uint32_t>(d.back() << 8);
  return acc;
}
std::uint16_t fold(std::uint32_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<std::uint16_t>(~acc & 0xffff);
}
void be16(std::vector<std::uint8_t>& b, std::uint16_t v) {
  b.push_back(static_cast<std::uint8_t>(v >> 8));
  b.push_back(static_cast<std::uint8_t>(v));
}
void be32(std::vector<std::uint8_t>& b, std::uint32_t v) {
  for (int i = 3; i >= 0; --i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

}  // namespace

std::vector<std::uint8_t> sectionHeader(const std::string& application) {
  std::vector<std::uint8_t> body;
  u32(body, 0x1A2B3C4D);  // byte-order magic
  u16(body, 1);           // major version
  u16(body, 0);           // minor version
  u32(body, 0xffffffff);  // section length: unknown (64 bits of -1)
  u32(body, 0xffffffff);
  option(body, 4, application);  // shb_userappl
  option(body, 0, {});           // opt_endofopt
  return block(0x0A0D0D0A, body);
}

std::vector<std::uint8_t> interfaceDescription(std::uint32_t linktype, const std::string& name,
                                               const std::string& description) {
  std::vector<std::uint8_t> body;
  u16(body, static_cast<std::uint16_t>(linktype));
  u16(body, 0);                  // reserved
  u32(body, 0);                  // snaplen: no limit
  option(body, 2, name);         // if_name
  option(body, 3, description);  // if_description
  const char tsresol = 6;        // microseconds
  option(body, 9, std::string_view(&tsresol, 1));
  option(body, 0, {});
  return block(1, body);
}

std::vector<std::uint8_t> enhancedPacket(std::uint32_t interface_id, std::uint64_t ts_us,
                                         std::span<const std::uint8_t> packet) {
  std::vector<std::uint8_t> body;
  u32(body, interface_id);
  u32(body, static_cast<std::uint32_t>(ts_us >> 32));
  u32(body, static_cast<std::uint32_t>(ts_us));
  u32(body, static_cast<std::uint32_t>(packet.size()));  // captured length
  u32(body, static_cast<std::uint32_t>(packet.size()));  // original length
  body.insert(body.end(), packet.begin(), packet.end());
  pad4(body);
  return block(6, body);
}

std::vector<std::uint8_t> decryptionSecrets(std::uint32_t type, std::string_view secrets) {
  std::vector<std::uint8_t> body;
  u32(body, type);
  u32(body, static_cast<std::uint32_t>(secrets.size()));
  body.insert(body.end(), secrets.begin(), secrets.end());
  pad4(body);
  return block(0x0000000A, body);
}

std::vector<std::uint8_t> tcpPacket(const trace::Endpoint& src, const trace::Endpoint& dst, std::uint32_t seq,
                                    std::uint32_t ack, std::uint8_t flags, std::span<const std::uint8_t> payload) {
  std::vector<std::uint8_t> tcp;
  be16(tcp, src.port);
  be16(tcp, dst.port);
  be32(tcp, seq);
  be32(tcp, ack);
  tcp.push_back(5 << 4);  // data offset: 20 bytes, no options
  tcp.push_back(flags);
  be16(tcp, 65535);  // window
  be16(tcp, 0);      // checksum, filled below
  be16(tcp, 0);      // urgent pointer
  tcp.insert(tcp.end(), payload.begin(), payload.end());
  const std::size_t alen = src.v6 ? 16 : 4;
  // Pseudo-header sum: addresses, protocol, TCP length (RFC 9293 3.1, RFC 8200 8.1).
  std::uint32_t acc = sum16(std::span(src.addr.data(), alen));
  acc = sum16(std::span(dst.addr.data(), alen), acc);
  acc += 6;
  acc += static_cast<std::uint32_t>(tcp.size() & 0xffff) + static_cast<std::uint32_t>(tcp.size() >> 16);
  const std::uint16_t csum = fold(sum16(tcp, acc));
  tcp[16] = static_cast<std::uint8_t>(csum >> 8);
  tcp[17] = static_cast<std::uint8_t>(csum);

  std::vector<std::uint8_t> ip;
  if (!src.v6) {
    ip.push_back(0x45);
    ip.push_back(0);
    be16(ip, static_cast<std::uint16_t>(20 + tcp.size()));
    be16(ip, 0);       // identification
    be16(ip, 0x4000);  // don't fragment
    ip.push_back(64);  // TTL
    ip.push_back(6);   // TCP
    be16(ip, 0);
    ip.insert(ip.end(), src.addr.begin(), src.addr.begin() + 4);
    ip.insert(ip.end(), dst.addr.begin(), dst.addr.begin() + 4);
    const std::uint16_t h = fold(sum16(ip));
    ip[10] = static_cast<std::uint8_t>(h >> 8);
    ip[11] = static_cast<std::uint8_t>(h);
  } else {
    be32(ip, 0x60000000);
    be16(ip, static_cast<std::uint16_t>(tcp.size()));
    ip.push_back(6);   // next header: TCP
    ip.push_back(64);  // hop limit
    ip.insert(ip.end(), src.addr.begin(), src.addr.end());
    ip.insert(ip.end(), dst.addr.begin(), dst.addr.end());
  }
  ip.insert(ip.end(), tcp.begin(), tcp.end());
  return ip;
}

}  // namespace pcapng

namespace {
constexpr std::size_t kMaxSegment = 32768;  // keeps every IPv4 packet under 65535 bytes
std::uint64_t micros(trace::Clock::time_point ts) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(ts.time_since_epoch()).count());
}
std::uint32_t ifaceOf(trace::Leg leg) { return leg == trace::Leg::Upstream ? 1 : 0; }
}  // namespace

namespace {
// The section header and both interfaces: first in the file, and again after every reopen (a
// pcapng file may hold several sections; each one reads on its own).
std::string sectionStart(std::optional<std::uint32_t> captured_linktype) {
  std::string out;
  if (captured_linktype) {
    for (const auto& b : {pcapng::sectionHeader("tlstrace"),
                          pcapng::interfaceDescription(*captured_linktype, "tlstrace-capture",
                                                       "both legs as captured on the wire (--capture)")})
      out.append(b.begin(), b.end());
    return out;
  }
  for (const auto& b : {pcapng::sectionHeader("tlstrace"),
                        pcapng::interfaceDescription(pcapng::kLinktypeRaw, "tlstrace-client-leg",
                                                     "client <-> tlstrace listen address (TLS as the client saw it)"),
                        pcapng::interfaceDescription(pcapng::kLinktypeRaw, "tlstrace-upstream-leg",
                                                     "tlstrace <-> server (TLS as the server saw it)")})
    out.append(b.begin(), b.end());
  return out;
}
}  // namespace

// Written by the io threads: never waits for a FIFO's reader (blocks are held, then dropped and
// counted). A capture is one run: the file starts empty.
PcapngSink::PcapngSink(const std::string& path) : PcapngSink(path, std::nullopt) {}
PcapngSink::PcapngSink(const std::string& path, std::uint32_t captured_linktype)
    : PcapngSink(path, std::optional<std::uint32_t>(captured_linktype)) {}

PcapngSink::PcapngSink(const std::string& path, std::optional<std::uint32_t> captured_linktype)
    : out_([&] {
        OutputFile::Spec s;
        s.path = path;
        s.output = "pcap";
        s.what = "capture";
        s.unit = "blocks";
        s.mode = 0600;
        s.blocking = false;
        s.lines = false;
        s.truncate = true;
        s.preamble = sectionStart(captured_linktype);
        s.preamble_units = captured_linktype ? 2 : 3;  // the section header, the interface descriptions
        return s;
      }()),
      captured_only_(captured_linktype.has_value()) {
  (void)out_.write({}, 0);
}

PcapngSink::~PcapngSink() {
  // Whatever any thread left uncommitted (normally nothing: connections commit as they go).
  for (auto& [id, p] : pending_) writeOut(p);
}

void PcapngSink::writeOut(Pending& p) {
  std::string out;
  std::uint64_t blocks = p.blocks.size();
  if (!p.secrets.empty()) {
    const auto dsb = pcapng::decryptionSecrets(pcapng::kSecretsTls, p.secrets);
    out.append(dsb.begin(), dsb.end());
    ++blocks;
  }
  for (const auto& b : p.blocks) out.append(b.begin(), b.end());
  (void)out_.write(out, blocks);
  p.secrets.clear();
  p.blocks.clear();
}

PcapngSink::Pending& PcapngSink::pending() {
  std::lock_guard<std::mutex> lock(pending_mu_);
  return pending_[std::this_thread::get_id()];  // std::map: references stay valid
}

void PcapngSink::captured(std::uint64_t ts_us, std::span<const std::uint8_t> frame) {
  const auto b = pcapng::enhancedPacket(0, ts_us, frame);
  std::lock_guard<std::mutex> lock(mu_);
  (void)out_.write(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()), 1);
}

void PcapngSink::packet(std::uint32_t iface, std::uint64_t ts_us, std::vector<std::uint8_t> bytes) {
  if (captured_only_) return;  // the capture brings the real ones
  pending().blocks.push_back(pcapng::enhancedPacket(iface, ts_us, bytes));
}

PcapngSink::Flow* PcapngSink::flow(std::uint64_t conn, trace::Leg leg) {
  auto it = flows_.find({conn, static_cast<int>(leg)});
  return it == flows_.end() ? nullptr : &it->second;
}

void PcapngSink::open(std::uint64_t conn, trace::Leg leg, const trace::Endpoint& initiator,
                      const trace::Endpoint& responder, trace::Clock::time_point ts) {
  std::lock_guard<std::mutex> lock(mu_);
  Flow fl;
  fl.a = initiator;
  fl.b = responder;
  // Fixed initial sequence numbers per flow: readable, and relative numbering in Wireshark anyway.
  const std::uint32_t isn_a = 0x10000000u + static_cast<std::uint32_t>(conn * 0x100u);
  const std::uint32_t isn_b = 0x50000000u + static_cast<std::uint32_t>(conn * 0x100u);
  const auto t = micros(ts);
  const auto iface = ifaceOf(leg);
  packet(iface, t, pcapng::tcpPacket(fl.a, fl.b, isn_a, 0, pcapng::kSyn, {}));
  packet(iface, t, pcapng::tcpPacket(fl.b, fl.a, isn_b, isn_a + 1, pcapng::kSyn | pcapng::kAck, {}));
  packet(iface, t, pcapng::tcpPacket(fl.a, fl.b, isn_a + 1, isn_b + 1, pcapng::kAck, {}));
  fl.seq_a = isn_a + 1;
  fl.seq_b = isn_b + 1;
  flows_[{conn, static_cast<int>(leg)}] = fl;
}

void PcapngSink::data(std::uint64_t conn, trace::Leg leg, bool from_initiator, std::span<const std::uint8_t> bytes,
                      trace::Clock::time_point ts) {
  std::lock_guard<std::mutex> lock(mu_);
  Flow* fl = flow(conn, leg);
  if (!fl || fl->reset) return;
  const auto t = micros(ts);
  while (!bytes.empty()) {
    const auto chunk = bytes.first(std::min(bytes.size(), kMaxSegment));
    bytes = bytes.subspan(chunk.size());
    auto& seq = from_initiator ? fl->seq_a : fl->seq_b;
    const auto ack = from_initiator ? fl->seq_b : fl->seq_a;
    packet(ifaceOf(leg), t,
           pcapng::tcpPacket(from_initiator ? fl->a : fl->b, from_initiator ? fl->b : fl->a, seq, ack,
                             pcapng::kPsh | pcapng::kAck, chunk));
    seq += static_cast<std::uint32_t>(chunk.size());
  }
}

void PcapngSink::fin(std::uint64_t conn, trace::Leg leg, bool from_initiator, trace::Clock::time_point ts) {
  std::lock_guard<std::mutex> lock(mu_);
  Flow* fl = flow(conn, leg);
  if (!fl || fl->reset || (from_initiator ? fl->fin_a : fl->fin_b)) return;
  auto& seq = from_initiator ? fl->seq_a : fl->seq_b;
  const auto ack = from_initiator ? fl->seq_b : fl->seq_a;
  packet(ifaceOf(leg), micros(ts),
         pcapng::tcpPacket(from_initiator ? fl->a : fl->b, from_initiator ? fl->b : fl->a, seq, ack,
                           pcapng::kFin | pcapng::kAck, {}));
  seq += 1;
  (from_initiator ? fl->fin_a : fl->fin_b) = true;
}

void PcapngSink::rst(std::uint64_t conn, trace::Leg leg, bool from_initiator, trace::Clock::time_point ts) {
  std::lock_guard<std::mutex> lock(mu_);
  Flow* fl = flow(conn, leg);
  if (!fl || fl->reset) return;
  const auto seq = from_initiator ? fl->seq_a : fl->seq_b;
  const auto ack = from_initiator ? fl->seq_b : fl->seq_a;
  packet(ifaceOf(leg), micros(ts),
         pcapng::tcpPacket(from_initiator ? fl->a : fl->b, from_initiator ? fl->b : fl->a, seq, ack,
                           pcapng::kRst | pcapng::kAck, {}));
  fl->reset = true;
}

void PcapngSink::close(std::uint64_t conn, trace::Leg leg) {
  std::lock_guard<std::mutex> lock(mu_);
  flows_.erase({conn, static_cast<int>(leg)});
}

void PcapngSink::secret(std::string_view line) {
  if (!isNssKeylogLine(line)) return;  // the same lines as the key log
  Pending& p = pending();
  p.secrets.append(line);
  p.secrets.push_back('\n');
}

void PcapngSink::commit() {
  Pending& p = pending();
  if (p.secrets.empty() && p.blocks.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  writeOut(p);
}

}  // namespace tlstrace::sinks

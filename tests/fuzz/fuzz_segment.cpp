// libFuzzer target: captured frames (wire/tcp_segment.h) through the Wireshark-style analysis
// (analysis/tcp_flow.h) into tcp.segment events, on any bytes. The input is a link type choice
// (first byte) then frames, each behind a 2-byte big-endian length, all fed to one analyser in
// order (its state across segments is what needs shaking).
#include <cstddef>
#include <cstdint>

#include "analysis/tcp_flow.h"
#include "wire/tcp_segment.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tlstrace;
  static constexpr std::uint32_t kLinks[] = {wire::kLinkNull, wire::kLinkEthernet,  wire::kLinkRaw,
                                             wire::kLinkLoop, wire::kLinkLinuxSll,  wire::kLinkIpv4,
                                             wire::kLinkIpv6, wire::kLinkLinuxSll2, 147};
  if (size < 1) return 0;
  const std::uint32_t link = kLinks[data[0] % (sizeof kLinks / sizeof kLinks[0])];
  wire::ByteReader r(wire::Bytes(data + 1, size - 1));
  analysis::TcpFlowAnalyzer flow;
  double t = 0;
  wire::ByteReader frame;
  while (r.readU16Prefixed(frame)) {
    const auto d = wire::decodeFrame(link, frame.rest());
    if (!d.segment) continue;
    const auto a = flow.add(d.segment->tcp, t += 0.001);
    (void)analysis::segmentEvent(d.segment->tcp, a, (d.segment->tcp.src_port & 1) != 0);
  }
  return 0;
}

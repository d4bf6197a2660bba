// --capture: the proxied connections' real segments, captured with libpcap on a thread of its own,
// decoded (wire/tcp_segment.h), analysed as Wireshark does (analysis/tcp_flow.h) and emitted as
// tcp.segment events on their connection and leg; with --pcap, the pcapng carries these packets.
//
// The filter (compiled by libpcap, run in the kernel) holds the listeners' ports (the client legs,
// SYN included) and each upstream destination a connection is about to connect to; a connection
// asks for its destination before connecting and connects once the filter has it, so the SYN is
// captured too. Segments are told apart by their 4-tuples in user space: a segment seen before its
// leg is attached (the client's SYN comes before accept) waits, bounded, until it is; other
// traffic to the same destinations is dropped. The data path never waits for the capture thread,
// only the first connection to a new destination waits for the filter (well under a millisecond).
// Transparent mode: the client legs' segments carry the original destination port on the wire,
// not the listener's, so only the upstream legs are captured there.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "trace/event.h"
#include "trace/tap.h"

namespace tlstrace::sinks {
class PcapngSink;
}

namespace tlstrace::net {

class PacketCapture {
 public:
  virtual ~PacketCapture() = default;  // stops the thread, writes out what is pending
  // Segments to and from this destination are captured from now on; `ready` runs (on the capture
  // thread) once the kernel's filter has it, at once when it had it already.
  virtual void watch(const trace::Endpoint& dest, std::function<void()> ready) = 0;
  virtual void unwatch(const trace::Endpoint& dest) = 0;
  // A listener's port (the client legs): returns once the filter has it (at most a second).
  virtual void listenPort(std::uint16_t port) = 0;
  // A leg's socket is up: its segments (those seen already too) belong to (conn, leg).
  virtual void attach(std::uint64_t conn, trace::Leg leg, const trace::Endpoint& local,
                      const trace::Endpoint& remote) = 0;
  // The socket is closed: the closing segments that follow still count, for a few seconds.
  virtual void detach(std::uint64_t conn, trace::Leg leg) = 0;
};

// The link type every capture has (Linux cooked capture on the "any" device).
inline constexpr std::uint32_t kCaptureLinktype = 113;

// Opens the capture on every interface (libpcap's "any" device, loopback included) for the
// listeners' ports; nullptr with `error` (naming CAP_NET_RAW when it is the capability, or saying
// that this build has no libpcap). `derive_states`: tcp.state events (source "capture") derived from
// each leg's segments, for --tcp-states without eBPF.
[[nodiscard]] std::unique_ptr<PacketCapture> openCapture(trace::Tracer& tracer, sinks::PcapngSink* pcap,
                                                         std::vector<std::uint16_t> listen_ports, std::string& error,
                                                         bool derive_states = false);

}  // namespace tlstrace::net

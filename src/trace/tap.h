// The wire tap: the exact bytes that crossed each leg, with the TCP lifecycle, for captures
// (pcapng). Called by the network layer; implemented by sinks. Pure interface.
#pragma once
#include <array>
#include <cstdint>
#include <span>
#include <string_view>

#include "trace/event.h"

namespace tlstrace::trace {

struct Endpoint {
  std::array<std::uint8_t, 16> addr{};  // IPv4 in the first 4 bytes when !v6
  bool v6 = false;
  std::uint16_t port = 0;
};

class WireTap {
 public:
  virtual ~WireTap() = default;
  // A leg's TCP connection is up; `initiator` opened it (the client, or the proxy upstream).
  virtual void open(std::uint64_t conn, Leg leg, const Endpoint& initiator, const Endpoint& responder,
                    Clock::time_point ts) = 0;
  virtual void data(std::uint64_t conn, Leg leg, bool from_initiator, std::span<const std::uint8_t> bytes,
                    Clock::time_point ts) = 0;
  // One side finished sending (FIN) or reset the connection (RST).
  virtual void fin(std::uint64_t conn, Leg leg, bool from_initiator, Clock::time_point ts) = 0;
  virtual void rst(std::uint64_t conn, Leg leg, bool from_initiator, Clock::time_point ts) = 0;
  // The leg is gone; forget its state.
  virtual void close(std::uint64_t conn, Leg leg) = 0;
  // An NSS key-log line (goes into a Decryption Secrets Block before the packets that need it).
  virtual void secret(std::string_view keylog_line) = 0;
  // End of one burst of work: everything recorded so far is written out, secrets first.
  virtual void commit() = 0;
};

}  // namespace tlstrace::trace

// Turns decoded handshake messages into the `body` objects of tls.message events (events.md).
#pragma once
#include <cstdint>
#include <string>

#include "trace/json.h"
#include "wire/byte_reader.h"

namespace tlstrace::trace {

struct MessageBody {
  std::string type;  // "ClientHello", "HelloRetryRequest", ...
  std::uint32_t length = 0;
  Json body = Json::object();
};

// `msg` is one whole handshake message, header included. `tls13` selects the TLS 1.3 layouts of
// messages whose shape differs between versions (Certificate, NewSessionTicket, ...).
[[nodiscard]] MessageBody describeHandshake(wire::Bytes msg, bool tls13);

// {"id": n, "name": "..."} objects used throughout the schema.
[[nodiscard]] Json codeName(std::uint16_t id, std::string_view name);

}  // namespace tlstrace::trace

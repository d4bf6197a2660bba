// Shared between the STARTTLS machine's files (starttls.cpp, starttls_binary.cpp).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "session/starttls.h"

namespace tlstrace::session {

// A line of text as shown in a step: without its CRLF, capped.
[[nodiscard]] std::string lineText(std::string_view line);
// The length of the first whole message of a binary protocol's bytes; 0: need more; SIZE_MAX:
// malformed. `awaiting`: the server's one-byte answer (PostgreSQL) is due.
[[nodiscard]] std::size_t frameBinary(StartTlsProto p, bool from_client, bool awaiting,
                                      std::span<const std::uint8_t> b);

}  // namespace tlstrace::session

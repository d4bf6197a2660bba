// The TCP facts of a leg as events: the client's saved SYN decoded (wire/tcp_syn.h) into tcp.syn,
// and the kernel's state numbers by name. Pure: net/ gathers the kernel's bytes and numbers.
#pragma once
#include <cstdint>
#include <string_view>

#include "trace/events.h"
#include "wire/byte_reader.h"

namespace tlstrace::trace {

// tcp.syn from the bytes TCP_SAVED_SYN gave (IP header first); a SYN that does not decode gives
// an event with `error` and `hex`.
[[nodiscard]] ev::TcpSyn synEvent(wire::Bytes saved_syn);

// Linux's TCP states (include/net/tcp_states.h, a stable ABI: TCP_INFO's tcpi_state and the
// inet_sock_set_state tracepoint use the same numbers), named as the kernel names them without
// the TCP_ prefix: ESTABLISHED, SYN_SENT, ..., or "" for a number outside the list.
[[nodiscard]] std::string_view tcpStateName(int state);

}  // namespace tlstrace::trace

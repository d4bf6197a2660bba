// Byte buffers that idle connections give back and busy ones borrow, per thread: an idle
// connection holds no I/O buffer, and a busy one does not allocate per burst.
#pragma once
#include <cstdint>
#include <vector>

namespace tlstrace::tls {

using ByteBuffer = std::vector<std::uint8_t>;

// An empty buffer with room for at least `at_least` bytes: one an earlier user gave back when the
// pool has one that large, else a new one.
[[nodiscard]] ByteBuffer borrowBuffer(std::size_t at_least = 0);
// Takes `b`'s storage (leaving `b` empty, without capacity); keeps it for reuse unless the pool
// is full or the buffer is too large to keep idle.
void returnBuffer(ByteBuffer& b);

}  // namespace tlstrace::tls

#include "tls/buffer_pool.h"

#include <utility>

namespace tlstrace::tls {

namespace {

// Enough for the bursts one thread has in flight at once; a buffer that grew past a bulk
// transfer's write chunk is freed instead of being kept by the pool.
constexpr std::size_t kMaxPooled = 64;
constexpr std::size_t kMaxKeptCapacity = 80 * 1024;

std::vector<ByteBuffer>& pool() {
  thread_local std::vector<ByteBuffer> buffers;
  return buffers;
}

}  // namespace

ByteBuffer borrowBuffer() {
  auto& p = pool();
  if (p.empty()) return {};
  ByteBuffer b = std::move(p.back());
  p.pop_back();
  return b;
}

void returnBuffer(ByteBuffer& b) {
  ByteBuffer taken;
  taken.swap(b);
  if (taken.capacity() == 0 || taken.capacity() > kMaxKeptCapacity) return;
  auto& p = pool();
  if (p.size() >= kMaxPooled) return;
  taken.clear();
  p.push_back(std::move(taken));
}

}  // namespace tlstrace::tls

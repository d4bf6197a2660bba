#include "tls/buffer_pool.h"

#include <utility>

namespace tlstrace::tls {

namespace {

// Enough for the bursts one thread has in flight at once. Buffers as large as a leg's queue can
// grow (a bulk transfer's) are kept too: freeing and reallocating them per burst made glibc give
// the pages back and fault them in again (250,000 page faults per GB relayed). The bytes kept per
// thread are bounded instead.
constexpr std::size_t kMaxPooled = 64;
constexpr std::size_t kMaxKeptCapacity = 512 * 1024;
constexpr std::size_t kMaxPoolBytes = 8 * 1024 * 1024;

struct Pool {
  std::vector<ByteBuffer> buffers;
  std::size_t bytes = 0;  // capacity held by `buffers`
};

Pool& pool() {
  thread_local Pool p;
  return p;
}

}  // namespace

ByteBuffer borrowBuffer(std::size_t at_least) {
  // The most recently given back buffer that is large enough (hot in cache): growing a smaller
  // one would allocate anew and free it, which is what the pool is there to avoid.
  Pool& p = pool();
  for (auto it = p.buffers.rbegin(); it != p.buffers.rend(); ++it) {
    if (it->capacity() < at_least) continue;
    ByteBuffer b = std::move(*it);
    p.buffers.erase(std::next(it).base());
    p.bytes -= b.capacity();
    return b;
  }
  ByteBuffer b;
  b.reserve(at_least);
  return b;
}

void returnBuffer(ByteBuffer& b) {
  ByteBuffer taken;
  taken.swap(b);
  if (taken.capacity() == 0 || taken.capacity() > kMaxKeptCapacity) return;
  Pool& p = pool();
  if (p.buffers.size() >= kMaxPooled || p.bytes + taken.capacity() > kMaxPoolBytes) return;
  taken.clear();
  p.bytes += taken.capacity();
  p.buffers.push_back(std::move(taken));
}

}  // namespace tlstrace::tls

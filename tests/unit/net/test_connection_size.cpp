// Per-connection memory (benchmark test e, docs/performance.md): every live connection is one
// make_shared<net::Connection>, the object and its 16-byte control block in one allocation that
// jemalloc rounds up to a size class (..., 2048, 2560, 3072, 3584, ...). Crossing a boundary
// costs each connection the whole step: 3280 bytes (class 3584) measured 41.0 KiB per idle
// connection, 2544 (class 2560) 39.8. A member that pushes it over belongs behind a pointer,
// made when its feature is used (as Socket::close_info, Connection::Hop, ProxySession's pass_).
#include <doctest/doctest.h>

#include <cstddef>

#include "net/connection.h"

TEST_CASE("net::Connection stays within jemalloc's 2560-byte size class") {
  constexpr std::size_t kControlBlock = 2 * sizeof(int) + sizeof(void*);  // vptr + use and weak counts
  constexpr std::size_t kSizeClass = 2560;
  INFO("sizeof(net::Connection) = " << sizeof(tlstrace::net::Connection)
                                    << ", sizeof(session::ProxySession) = " << sizeof(tlstrace::session::ProxySession));
  CHECK(sizeof(tlstrace::net::Connection) + kControlBlock <= kSizeClass);
}

// libFuzzer target: the upstream-proxy hop (wire/proxy_hop.h, wire/socks5_client.h) fed a proxy's
// replies in pieces. The first byte picks HTTP CONNECT or SOCKS5 and whether credentials are
// offered; the second the size of the pieces. Every step must be a value, never a crash or an
// unbounded buffer.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "wire/proxy_hop.h"
#include "wire/socks5_client.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  namespace w = tlstrace::wire;
  w::ProxyHop::Spec spec;
  spec.protocol = (data[0] & 1) ? w::ProxyHop::Protocol::Socks5 : w::ProxyHop::Protocol::HttpConnect;
  spec.auth = (data[0] & 2) != 0;
  spec.host = (data[0] & 4) ? "127.0.0.1" : "localhost";
  spec.port = 443;
  spec.user = "alice";
  spec.password = "s3cret";
  spec.authorization = "Basic YWxpY2U6czNjcmV0";
  const std::size_t piece = std::size_t{data[1]} + 1;
  w::ProxyHop hop(spec);
  (void)hop.start();
  const w::Bytes in(data + 2, size - 2);
  for (std::size_t off = 0; off < in.size(); off += piece) {
    const auto st = hop.onBytes(in.subspan(off, std::min(piece, in.size() - off)));
    if (st.kind == w::ProxyHop::Step::Kind::Done || st.kind == w::ProxyHop::Step::Kind::Failed) break;
  }
  (void)w::parseHttpConnectReply(in);
  (void)w::socks5::parseConnectReply(in);
  return 0;
}

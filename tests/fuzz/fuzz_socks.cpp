// libFuzzer target: the SOCKS5 server-side decoder (wire/socks.h) on any bytes, without and with
// RFC 1929 credentials required. The first byte picks which; the decoder's promises are checked:
// it never claims more bytes than it was given, a CONNECT names a host, an error names a cause,
// and what it owes the client only grows as bytes are added (the session sends the difference).
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "wire/socks.h"

namespace socks = tlstrace::wire::socks;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const socks::Credentials req = (data[0] & 1) ? socks::Credentials{"alice", "s3cret"} : socks::Credentials{};
  const tlstrace::wire::Bytes in(data + 1, size - 1);
  const socks::Dialogue d = socks::decodeClient(in, req);
  if (d.kind == socks::Dialogue::Kind::Connect && (d.consumed > in.size() || d.host.empty())) std::abort();
  if (d.kind == socks::Dialogue::Kind::Error && d.cause.empty()) std::abort();
  if (!in.empty()) {
    const socks::Dialogue shorter = socks::decodeClient(in.first(in.size() - 1), req);
    if (shorter.kind == socks::Dialogue::Kind::NeedMore &&
        d.interim.compare(0, shorter.interim.size(), shorter.interim) != 0)
      std::abort();
  }
  return 0;
}

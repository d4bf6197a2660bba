// libFuzzer target: the ClientHello reassembler and the per-leg handshake decoder, on any bytes.
#include <cstddef>
#include <cstdint>

#include "trace/decoder.h"
#include "wire/handshake.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tlstrace::wire::Bytes in(data, size);
  auto peek = tlstrace::wire::peekClientHello(in);
  tlstrace::trace::LegDecoder leg;
  if (peek.kind == tlstrace::wire::HelloPeek::Kind::ClientHello) (void)leg.describe(peek.message, true);
  // The input as a sequence of handshake messages (each with its own 4-byte header), so the
  // decoder's state (version, key exchange) is driven by the fuzzer too.
  std::size_t off = 0;
  bool from_client = false;
  while (off + 4 <= size) {
    const std::size_t len = (std::size_t{data[off + 1]} << 16) | (std::size_t{data[off + 2]} << 8) | data[off + 3];
    const std::size_t n = std::min(size - off, 4 + len);
    (void)leg.describe(in.subspan(off, n), from_client);
    from_client = !from_client;
    off += n;
  }
  if (size > 4) (void)tlstrace::wire::decodeServerHello(in.subspan(4));
  (void)tlstrace::trace::Json::parse(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}

// libFuzzer target: the STARTTLS preamble machine (session/starttls.h). Input: one byte choosing
// the protocol, then chunks of [header][bytes], header bit 7 = from the client, bits 0-6 = length.
// Besides not crashing: once the machine stops relaying the preamble, every byte fed to it has
// been handed back (forward/rest/back), none dropped, none invented.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "session/starttls.h"

using tlstrace::session::StartTlsMachine;
using tlstrace::session::StartTlsProto;
using tlstrace::session::StartTlsResult;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  StartTlsMachine m(static_cast<StartTlsProto>(data[0] % 6));
  std::size_t fed[2] = {0, 0}, out[2] = {0, 0};
  std::size_t i = 1;
  while (i < size) {
    const bool client = (data[i] & 0x80) != 0;
    const std::size_t n = std::min<std::size_t>(data[i] & 0x7f, size - i - 1);
    ++i;
    const StartTlsResult r = m.feed(client, {data + i, n});
    i += n;
    fed[client] += n;
    out[client] += r.forward.size() + r.rest.size();
    out[!client] += r.back.size();
    for (const auto& s : r.steps)
      if (s.step.empty()) std::abort();
    if (r.kind != StartTlsResult::Kind::Continue) {
      // DirectTls and Upgrade from the client hand back what they hold; the server's partial
      // message (none in a well-formed preamble) is not judged then.
      if (out[client] != fed[client]) std::abort();
      if (r.kind == StartTlsResult::Kind::Plain && out[!client] != fed[!client]) std::abort();
      return 0;
    }
    if (out[client] > fed[client]) std::abort();
  }
  return 0;
}

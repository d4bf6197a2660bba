// libFuzzer target: the saved-SYN decoder (wire/tcp_syn.h) and the tcp.syn event made from it,
// on any bytes.
#include <cstddef>
#include <cstdint>

#include "trace/tcp_events.h"
#include "wire/tcp_syn.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const tlstrace::wire::Bytes in(data, size);
  (void)tlstrace::wire::decodeSavedSyn(in);
  (void)tlstrace::trace::synEvent(in);
  return 0;
}

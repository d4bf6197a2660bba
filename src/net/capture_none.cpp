// A build without libpcap: --capture says so at start.
#include "net/capture.h"

namespace tlstrace::net {

std::unique_ptr<PacketCapture> openCapture(trace::Tracer&, sinks::PcapngSink*, std::vector<std::uint16_t>,
                                           std::string& error, bool) {
  error = "--capture: this build has no libpcap (install Debian's libpcap-dev and rebuild); it also needs CAP_NET_RAW";
  return nullptr;
}

}  // namespace tlstrace::net

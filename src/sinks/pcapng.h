// pcapng (draft-ietf-opsawg-pcapng) capture of both legs as TCP/IP streams, with the key log in
// Decryption Secrets Blocks so that Wireshark decrypts the TLS as is.
#pragma once
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "sinks/output.h"
#include "trace/tap.h"

namespace tlstrace::sinks {

// Block encoders (section 4 of the pcapng draft), little-endian, each padded to 32 bits.
namespace pcapng {
inline constexpr std::uint32_t kLinktypeRaw = 101;        // raw IPv4/IPv6, no link header
inline constexpr std::uint32_t kSecretsTls = 0x544c534b;  // "TLSK": NSS key log
std::vector<std::uint8_t> sectionHeader(const std::string& application);
std::vector<std::uint8_t> interfaceDescription(std::uint32_t linktype, const std::string& name,
                                               const std::string& description);
std::vector<std::uint8_t> enhancedPacket(std::uint32_t interface_id, std::uint64_t ts_us,
                                         std::span<const std::uint8_t> packet);
std::vector<std::uint8_t> decryptionSecrets(std::uint32_t type, std::string_view secrets);
// An IPv4/IPv6 + TCP packet (RFC 791/8200, RFC 9293) with correct checksums.
std::vector<std::uint8_t> tcpPacket(const trace::Endpoint& src, const trace::Endpoint& dst, std::uint32_t seq,
                                    std::uint32_t ack, std::uint8_t flags, std::span<const std::uint8_t> payload);
inline constexpr std::uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10;
}  // namespace pcapng

class PcapngSink : public trace::WireTap {
 public:
  explicit PcapngSink(const std::string& path);  // created 0600: it holds secrets
  // --capture: the file carries the packets captured on the wire (link type `captured_linktype`,
  // one interface) instead of synthesised ones; the secrets still go in as they come.
  PcapngSink(const std::string& path, std::uint32_t captured_linktype);
  ~PcapngSink() override;
  void open(std::uint64_t conn, trace::Leg leg, const trace::Endpoint& initiator, const trace::Endpoint& responder,
            trace::Clock::time_point ts) override;
  void data(std::uint64_t conn, trace::Leg leg, bool from_initiator, std::span<const std::uint8_t> bytes,
            trace::Clock::time_point ts) override;
  void fin(std::uint64_t conn, trace::Leg leg, bool from_initiator, trace::Clock::time_point ts) override;
  void rst(std::uint64_t conn, trace::Leg leg, bool from_initiator, trace::Clock::time_point ts) override;
  void close(std::uint64_t conn, trace::Leg leg) override;
  void secret(std::string_view keylog_line) override;
  void commit() override;
  // --capture: one captured frame (from the capture thread).
  void captured(std::uint64_t ts_us, std::span<const std::uint8_t> frame);
  [[nodiscard]] OutputFile& output() { return out_; }

 private:
  struct Flow {
    trace::Endpoint a, b;                // initiator, responder
    std::uint32_t seq_a = 0, seq_b = 0;  // next sequence number each side sends
    bool fin_a = false, fin_b = false, reset = false;
  };
  PcapngSink(const std::string& path, std::optional<std::uint32_t> captured_linktype);
  void packet(std::uint32_t iface, std::uint64_t ts_us, std::vector<std::uint8_t> bytes);
  Flow* flow(std::uint64_t conn, trace::Leg leg);

  // What one io thread recorded since its last commit: committed together, secrets first, so a
  // thread's packets never precede the secrets they need.
  struct Pending {
    std::string secrets;
    std::vector<std::vector<std::uint8_t>> blocks;
  };
  Pending& pending();
  void writeOut(Pending& p);  // one write of its blocks, secrets first

  OutputFile out_;
  bool captured_only_ = false;  // --capture: no synthesised packets
  std::mutex mu_;               // the file and the flows
  std::map<std::pair<std::uint64_t, int>, Flow> flows_;
  std::mutex pending_mu_;
  std::map<std::thread::id, Pending> pending_;
};

}  // namespace tlstrace::sinks

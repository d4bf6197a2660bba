// The pcapng writer's blocks, byte by byte against the pcapng specification
// (draft-ietf-opsawg-pcapng sections 4.1, 4.2, 4.3 and 4.7), and the synthesised TCP/IP packets.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>

#include "sinks/pcapng.h"

using namespace tlstrace;
using namespace tlstrace::sinks;
using Bytes = std::vector<std::uint8_t>;

namespace {
std::uint32_t le32(const Bytes& b, std::size_t at) {
  return b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (static_cast<std::uint32_t>(b[at + 3]) << 24);
}
trace::Endpoint v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d, std::uint16_t port) {
  trace::Endpoint e;
  e.addr = {a, b, c, d};
  e.port = port;
  return e;
}
// One's-complement sum over 16-bit words; a packet with a correct checksum sums to 0xffff.
std::uint16_t onesSum(const Bytes& d, std::uint32_t acc = 0) {
  for (std::size_t i = 0; i + 1 < d.size(); i += 2) acc += (d[i] << 8) | d[i + 1];
  if (d.size() % 2) acc += d.back() << 8;
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<std::uint16_t>(acc);
}
}  // namespace

TEST_CASE("Section Header Block") {
  const Bytes b = pcapng::sectionHeader("tlstrace");
  const Bytes expected = {
      0x0A, 0x0D, 0x0D, 0x0A,                                              // block type
      0x2C, 0x00, 0x00, 0x00,                                              // block total length: 44
      0x4D, 0x3C, 0x2B, 0x1A,                                              // byte-order magic 0x1A2B3C4D, little-endian
      0x01, 0x00, 0x00, 0x00,                                              // version 1.0
      0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,                      // section length: unspecified
      0x04, 0x00, 0x08, 0x00, 't',  'l',  's',  't',  'r', 'a', 'c', 'e',  // shb_userappl
      0x00, 0x00, 0x00, 0x00,                                              // opt_endofopt
      0x2C, 0x00, 0x00, 0x00,                                              // block total length again
  };
  CHECK(b == expected);
}

TEST_CASE("Interface Description Block: raw IP, name, description, microsecond timestamps") {
  const Bytes b = pcapng::interfaceDescription(pcapng::kLinktypeRaw, "leg", "d");
  CHECK(le32(b, 0) == 1);
  CHECK(le32(b, 4) == b.size());
  CHECK(le32(b, b.size() - 4) == b.size());
  CHECK(b.size() % 4 == 0);
  const Bytes body_start = {101, 0, 0, 0, 0, 0, 0, 0};  // LINKTYPE_RAW, reserved, snaplen 0
  CHECK(Bytes(b.begin() + 8, b.begin() + 16) == body_start);
  const Bytes opts = {2, 0, 3, 0, 'l', 'e', 'g', 0,  // if_name, padded
                      3, 0, 1, 0, 'd', 0,   0,   0,  // if_description
                      9, 0, 1, 0, 6,   0,   0,   0,  // if_tsresol = 10^-6
                      0, 0, 0, 0};
  CHECK(Bytes(b.begin() + 16, b.end() - 4) == opts);
}

TEST_CASE("Enhanced Packet Block: interface, split timestamp, lengths, padding") {
  const Bytes pkt = {1, 2, 3, 4, 5};
  const std::uint64_t ts = 0x0005F0A1B2C3D4E5ull;
  const Bytes b = pcapng::enhancedPacket(1, ts, pkt);
  CHECK(le32(b, 0) == 6);
  CHECK(le32(b, 4) == 40);  // 28 fixed + 8 padded data + 4 trailer
  CHECK(le32(b, 8) == 1);   // interface id
  CHECK(le32(b, 12) == 0x0005F0A1);
  CHECK(le32(b, 16) == 0xB2C3D4E5);
  CHECK(le32(b, 20) == 5);  // captured
  CHECK(le32(b, 24) == 5);  // original
  CHECK(Bytes(b.begin() + 28, b.begin() + 36) == Bytes{1, 2, 3, 4, 5, 0, 0, 0});
  CHECK(le32(b, 36) == 40);
}

TEST_CASE("Decryption Secrets Block carries the key log as TLSK") {
  const std::string lines = "CLIENT_RANDOM aa bb\n";
  const Bytes b = pcapng::decryptionSecrets(pcapng::kSecretsTls, lines);
  CHECK(le32(b, 0) == 0x0000000A);
  CHECK(le32(b, 8) == 0x544c534b);
  CHECK(le32(b, 12) == lines.size());
  CHECK(std::string(b.begin() + 16, b.begin() + 16 + static_cast<std::ptrdiff_t>(lines.size())) == lines);
  CHECK(b.size() % 4 == 0);
  CHECK(le32(b, 4) == b.size());
}

TEST_CASE("TCP/IPv4 and TCP/IPv6 packets carry valid checksums") {
  const Bytes payload = {'h', 'e', 'l', 'l', 'o'};
  const Bytes p = pcapng::tcpPacket(v4(127, 0, 0, 1, 40000), v4(127, 0, 0, 2, 443), 1000, 2000,
                                    pcapng::kPsh | pcapng::kAck, payload);
  REQUIRE(p.size() == 20 + 20 + 5);
  CHECK(p[0] == 0x45);
  CHECK(((p[2] << 8) | p[3]) == 45);
  CHECK(p[9] == 6);
  CHECK(onesSum(Bytes(p.begin(), p.begin() + 20)) == 0xffff);  // IPv4 header checksum
  const Bytes tcp(p.begin() + 20, p.end());
  CHECK(((tcp[0] << 8) | tcp[1]) == 40000);
  CHECK(((tcp[2] << 8) | tcp[3]) == 443);
  CHECK(tcp[13] == 0x18);
  Bytes pseudo = {127, 0, 0, 1, 127, 0, 0, 2, 0, 6, 0, static_cast<std::uint8_t>(tcp.size())};
  pseudo.insert(pseudo.end(), tcp.begin(), tcp.end());
  CHECK(onesSum(pseudo) == 0xffff);

  trace::Endpoint a, b;
  a.v6 = b.v6 = true;
  a.addr[15] = 1;
  b.addr[15] = 2;
  a.port = 1;
  b.port = 2;
  const Bytes p6 = pcapng::tcpPacket(a, b, 1, 0, pcapng::kSyn, {});
  CHECK(p6.size() == 60);
  CHECK((p6[0] >> 4) == 6);
  CHECK(p6[6] == 6);
}

TEST_CASE("the sink writes secrets before the packets of the same burst, 0600, flushed") {
  char path[] = "/tmp/tlstrace-pcap-XXXXXX";
  const int fd = ::mkstemp(path);
  ::close(fd);
  ::unlink(path);
  {
    PcapngSink sink(path);
    const auto t = trace::Clock::now();
    sink.open(1, trace::Leg::Client, v4(127, 0, 0, 1, 5000), v4(127, 0, 0, 1, 8080), t);
    const Bytes hello = {0x16, 0x03, 0x01, 0, 0};
    sink.data(1, trace::Leg::Client, true, hello, t);
    sink.secret("CLIENT_RANDOM 00 11");
    sink.commit();
    struct stat st {};
    ::stat(path, &st);
    CHECK((st.st_mode & 0777) == 0600);
    std::ifstream f(path, std::ios::binary);
    const Bytes all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    // SHB, two IDBs, then the DSB ahead of SYN, SYN-ACK, ACK and the data packet.
    std::vector<std::uint32_t> types;
    for (std::size_t at = 0; at + 8 <= all.size(); at += le32(all, at + 4)) types.push_back(le32(all, at));
    CHECK(types == std::vector<std::uint32_t>{0x0A0D0D0A, 1, 1, 0x0A, 6, 6, 6, 6});
  }
  ::unlink(path);
}

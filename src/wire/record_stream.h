// The plaintext start of one direction of a TLS byte stream, for passthrough (the proxy relays the
// bytes untouched and only watches): TLS records (RFC 8446 5.1, RFC 5246 6.2.1) reassembled into
// whole handshake messages (RFC 8446 4, which may span records), alerts and ChangeCipherSpec.
// It stops, for good, where the direction's encryption starts: the first application_data record
// (TLS 1.3 encrypts all its later handshake messages under that type, RFC 8446 5.2), or a
// ChangeCipherSpec once the version is known to be TLS <= 1.2 (what follows it is encrypted,
// RFC 5246 7.1); TLS 1.3's ChangeCipherSpec is a compatibility no-op (RFC 8446 D.4) and a
// second ClientHello may follow it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "wire/byte_reader.h"

namespace tlstrace::wire {

class RecordStream {
 public:
  struct Item {
    std::uint8_t content_type = 0;    // 22 handshake (one whole message), 21 alert, 20 ChangeCipherSpec
    std::vector<std::uint8_t> bytes;  // the message (header included), the alert's two bytes, the CCS byte
  };
  // Reads `data` and appends what it completed to `out`. After done(), bytes are ignored.
  void feed(Bytes data, std::vector<Item>& out);
  // The version is TLS <= 1.2: a ChangeCipherSpec ends the plaintext.
  void setCcsEnds() { ccs_ends_ = true; }
  [[nodiscard]] bool done() const { return done_; }
  // Why it stopped early on malformed input (empty when it stopped where encryption starts).
  [[nodiscard]] const std::string& error() const { return error_; }

 private:
  void fail(std::string why);
  void record(std::uint8_t type, Bytes fragment, std::vector<Item>& out);
  std::vector<std::uint8_t> partial_;  // an incomplete record
  std::vector<std::uint8_t> message_;  // an incomplete handshake message
  bool ccs_ends_ = false;
  bool done_ = false;
  std::string error_;
};

}  // namespace tlstrace::wire

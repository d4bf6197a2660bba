#include "wire/record_stream.h"

#include <algorithm>

namespace tlstrace::wire {

namespace {
constexpr std::size_t kMaxRecord = (1u << 14) + 2048;  // RFC 5246 6.2.3: TLSCiphertext.length limit
constexpr std::size_t kMaxMessage = 256 * 1024;        // a certificate chain of that size is absurd already
}  // namespace

void RecordStream::fail(std::string why) {
  done_ = true;
  error_ = std::move(why);
  std::vector<std::uint8_t>().swap(partial_);
  std::vector<std::uint8_t>().swap(message_);
}

void RecordStream::feed(Bytes data, std::vector<Item>& out) {
  if (done_) return;
  // Only an incomplete record is copied; whole ones are read in place.
  std::vector<std::uint8_t> joined;
  if (!partial_.empty()) {
    joined.reserve(partial_.size() + data.size());
    joined.insert(joined.end(), partial_.begin(), partial_.end());
    joined.insert(joined.end(), data.begin(), data.end());
    partial_.clear();
    data = joined;
  }
  ByteReader r(data);
  while (!done_ && r.remaining() > 0) {
    const ByteReader at = r;
    std::uint8_t type = 0;
    std::uint16_t version = 0, len = 0;
    ByteReader frag;
    if (!r.readU8(type) || !r.readU16(version) || !r.readU16(len) || !r.readReader(len, frag)) {
      const auto rest = at.rest();
      partial_.assign(rest.begin(), rest.end());
      if (partial_.size() >= 5 && static_cast<std::size_t>((partial_[3] << 8) | partial_[4]) > kMaxRecord)
        fail("record length " + std::to_string((partial_[3] << 8) | partial_[4]) + " beyond the limit");
      return;
    }
    if ((version >> 8) != 3) return fail("record version is not 3.x");
    record(type, frag.rest(), out);
  }
}

void RecordStream::record(std::uint8_t type, Bytes fragment, std::vector<Item>& out) {
  switch (type) {
    case 23: done_ = true; return;  // encrypted from here on
    case 20:
      out.push_back({type, {fragment.begin(), fragment.end()}});
      if (ccs_ends_) done_ = true;
      return;
    case 21:
      // RFC 8446 6: level(1) description(1); several may share a record.
      for (std::size_t i = 0; i + 1 < fragment.size(); i += 2) out.push_back({type, {fragment[i], fragment[i + 1]}});
      return;
    case 22: break;
    default: return fail("unknown record content type " + std::to_string(type));
  }
  message_.insert(message_.end(), fragment.begin(), fragment.end());
  while (message_.size() >= 4) {
    // RFC 8446 4: msg_type(1) length(3).
    const std::size_t len = (std::size_t{message_[1]} << 16) | (std::size_t{message_[2]} << 8) | message_[3];
    if (len > kMaxMessage) return fail("handshake message of " + std::to_string(len) + " bytes beyond the limit");
    if (message_.size() < 4 + len) return;
    const auto end = message_.begin() + static_cast<std::ptrdiff_t>(4 + len);
    out.push_back({type, {message_.begin(), end}});
    message_.erase(message_.begin(), end);
  }
}

}  // namespace tlstrace::wire

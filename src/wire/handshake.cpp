#include "wire/handshake.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace tlstrace::wire {

std::string toHex(Bytes b, std::size_t cap) {
  const std::size_t n = std::min(b.size(), cap);
  std::string out(n * 2, '\0');
  writeHex(b.first(n), out.data());  // in place: this runs for every random and key share
  return out;
}

char* writeHex(Bytes b, char* out) {
  // Every random, key share and data event's first bytes pass here, twice (JSON and text): 16
  // bytes at a time, split into nibbles, '0'+n or 'a'+n-10 by a compare, then interleaved.
  using V16 = std::uint8_t __attribute__((vector_size(16)));
  const auto block = [](const std::uint8_t* in, char* to) {  // 16 bytes -> 32 hex digits
    V16 v;
    std::memcpy(&v, in, sizeof v);
    V16 hi = v >> 4;
    V16 lo = v & 0x0f;
    hi += '0' + ((hi > 9) & ('a' - '0' - 10));
    lo += '0' + ((lo > 9) & ('a' - '0' - 10));
    const V16 first = __builtin_shufflevector(hi, lo, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const V16 second = __builtin_shufflevector(hi, lo, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    std::memcpy(to, &first, sizeof first);
    std::memcpy(to + 16, &second, sizeof second);
  };
  std::size_t i = 0;
  for (; b.size() - i >= 16; i += 16, out += 32) block(b.data() + i, out);
  if (const std::size_t rest = b.size() - i; rest > 0) {  // the tail through one more block on the stack
    std::uint8_t in[16] = {};
    char digits[32];
    std::memcpy(in, b.data() + i, rest);
    block(in, digits);
    std::memcpy(out, digits, 2 * rest);
    out += 2 * rest;
  }
  return out;
}

std::vector<std::uint8_t> fromHex(std::string_view hex) {
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::vector<std::uint8_t> out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    const int hi = nib(hex[i]), lo = nib(hex[i + 1]);
    if (hi < 0 || lo < 0) break;
    out.push_back(static_cast<std::uint8_t>((hi << 4) | lo));
  }
  return out;
}

namespace {

// RFC 8446 4.1.3: SHA-256 of "HelloRetryRequest".
constexpr std::array<std::uint8_t, 32> kHrrRandom = {0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C,
                                                     0x02, 0x1E, 0x65, 0xB8, 0x91, 0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB,
                                                     0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C};

// The hellos' extension block: optional before TLS 1.2 (nothing may follow it).
bool readExtensions(ByteReader& r, std::vector<Extension>& out, DecodeError& err) {
  if (r.empty()) return true;
  if (!readExtensionList(r, out, err)) return false;
  if (!r.empty()) {
    err = {"trailing bytes after extensions", r.offset()};
    return false;
  }
  return true;
}

}  // namespace

bool readExtensionList(ByteReader& r, std::vector<Extension>& out, DecodeError& err) {
  ByteReader block;
  if (!r.readU16Prefixed(block)) {
    err = {"extensions length exceeds message", r.offset()};
    return false;
  }
  while (!block.empty()) {
    Extension e;
    ByteReader body;
    const std::size_t at = block.offset();
    if (!block.readU16(e.type) || !block.readU16Prefixed(body)) {
      err = {"truncated extension", at};
      return false;
    }
    e.offset = body.offset();
    e.data = body.rest();
    for (const auto& prev : out) {
      if (prev.type == e.type) {
        err = {"duplicate extension type " + std::to_string(e.type), at};
        return false;
      }
    }
    out.push_back(e);
  }
  return true;
}

Decoded<HandshakeHeader> decodeHandshakeHeader(Bytes msg) {
  ByteReader r(msg);
  Decoded<HandshakeHeader> d;
  if (!r.readU8(d.value.type) || !r.readU24(d.value.length)) {
    d.status = Status::NeedMore;
    return d;
  }
  d.status = r.remaining() >= d.value.length ? Status::Ok : Status::NeedMore;
  d.consumed = 4 + d.value.length;
  return d;
}

// RFC 8446 4.1.2 (and RFC 5246 7.4.1.2, which is the same layout).
Decoded<ClientHello> decodeClientHello(Bytes body) {
  ByteReader r(body, 4);
  ClientHello ch;
  if (!r.readU16(ch.legacy_version)) return malformedAt<ClientHello>(r, "truncated legacy_version");
  if (!r.readBytes(32, ch.random)) return malformedAt<ClientHello>(r, "truncated random");
  ByteReader sid;
  if (!r.readU8Prefixed(sid) || sid.remaining() > 32) return malformedAt<ClientHello>(r, "bad legacy_session_id");
  ch.session_id = sid.rest();
  ByteReader suites;
  if (!r.readU16Prefixed(suites) || suites.remaining() % 2 != 0 || suites.empty())
    return malformedAt<ClientHello>(r, "bad cipher_suites vector");
  while (!suites.empty()) {
    std::uint16_t s = 0;
    (void)suites.readU16(s);  // length is even, cannot fail
    ch.cipher_suites.push_back(s);
  }
  ByteReader comp;
  if (!r.readU8Prefixed(comp) || comp.empty()) return malformedAt<ClientHello>(r, "bad legacy_compression_methods");
  ch.compression_methods = comp.rest();
  Decoded<ClientHello> d;
  if (!readExtensions(r, ch.extensions, d.error)) {
    d.status = Status::Malformed;
    return d;
  }
  d.status = Status::Ok;
  d.value = std::move(ch);
  d.consumed = body.size();
  return d;
}

// RFC 8446 4.1.3.
Decoded<ServerHello> decodeServerHello(Bytes body) {
  ByteReader r(body, 4);
  ServerHello sh;
  if (!r.readU16(sh.legacy_version)) return malformedAt<ServerHello>(r, "truncated legacy_version");
  if (!r.readBytes(32, sh.random)) return malformedAt<ServerHello>(r, "truncated random");
  sh.hello_retry_request = std::equal(kHrrRandom.begin(), kHrrRandom.end(), sh.random.begin());
  ByteReader sid;
  if (!r.readU8Prefixed(sid) || sid.remaining() > 32) return malformedAt<ServerHello>(r, "bad legacy_session_id_echo");
  sh.session_id = sid.rest();
  if (!r.readU16(sh.cipher_suite)) return malformedAt<ServerHello>(r, "truncated cipher_suite");
  if (!r.readU8(sh.compression_method)) return malformedAt<ServerHello>(r, "truncated compression_method");
  Decoded<ServerHello> d;
  if (!readExtensions(r, sh.extensions, d.error)) {
    d.status = Status::Malformed;
    return d;
  }
  d.status = Status::Ok;
  d.value = std::move(sh);
  d.consumed = body.size();
  return d;
}

const Extension* findExtension(const std::vector<Extension>& exts, ExtensionType type) {
  auto it = std::find_if(exts.begin(), exts.end(),
                         [&](const Extension& e) { return e.type == static_cast<std::uint16_t>(type); });
  return it == exts.end() ? nullptr : &*it;
}

namespace {
std::string asString(Bytes b) { return std::string(b.begin(), b.end()); }
}  // namespace

// RFC 6066 3: ServerNameList, name_type 0 = host_name.
std::optional<std::vector<std::string>> decodeServerName(Bytes ext) {
  ByteReader r(ext);
  ByteReader list;
  if (!r.readU16Prefixed(list) || !r.empty()) return std::nullopt;
  std::vector<std::string> names;
  while (!list.empty()) {
    std::uint8_t type = 0;
    ByteReader name;
    if (!list.readU8(type) || !list.readU16Prefixed(name)) return std::nullopt;
    if (type == 0) names.push_back(asString(name.rest()));
  }
  return names;
}

// RFC 7301 3.1: ProtocolNameList of non-empty 8-bit-prefixed names.
std::optional<std::vector<std::string>> decodeAlpn(Bytes ext) {
  ByteReader r(ext);
  ByteReader list;
  if (!r.readU16Prefixed(list) || !r.empty()) return std::nullopt;
  std::vector<std::string> out;
  while (!list.empty()) {
    ByteReader name;
    if (!list.readU8Prefixed(name) || name.empty()) return std::nullopt;
    out.push_back(asString(name.rest()));
  }
  return out;
}

namespace {
std::optional<std::vector<std::uint16_t>> u16Items(ByteReader list) {
  if (list.remaining() % 2 != 0) return std::nullopt;
  std::vector<std::uint16_t> out;
  while (!list.empty()) {
    std::uint16_t v = 0;
    (void)list.readU16(v);
    out.push_back(v);
  }
  return out;
}
}  // namespace

std::optional<std::vector<std::uint16_t>> decodeU16List8(Bytes ext) {
  ByteReader r(ext);
  ByteReader list;
  if (!r.readU8Prefixed(list) || !r.empty()) return std::nullopt;
  return u16Items(list);
}

std::optional<std::vector<std::uint16_t>> decodeU16List16(Bytes ext) {
  ByteReader r(ext);
  ByteReader list;
  if (!r.readU16Prefixed(list) || !r.empty()) return std::nullopt;
  return u16Items(list);
}

std::optional<std::vector<std::uint8_t>> decodeU8List(Bytes ext) {
  ByteReader r(ext);
  ByteReader list;
  if (!r.readU8Prefixed(list) || !r.empty()) return std::nullopt;
  auto b = list.rest();
  return std::vector<std::uint8_t>(b.begin(), b.end());
}

// RFC 8446 4.2.8: KeyShareClientHello { KeyShareEntry client_shares<0..2^16-1>; }
std::optional<std::vector<KeyShareEntry>> decodeKeyShareClient(Bytes ext) {
  ByteReader r(ext);
  ByteReader list;
  if (!r.readU16Prefixed(list) || !r.empty()) return std::nullopt;
  std::vector<KeyShareEntry> out;
  while (!list.empty()) {
    KeyShareEntry e;
    ByteReader key;
    if (!list.readU16(e.group) || !list.readU16Prefixed(key) || key.empty()) return std::nullopt;
    e.key_exchange = key.rest();
    out.push_back(e);
  }
  return out;
}

// RFC 8446 4.2.8: KeyShareServerHello { KeyShareEntry server_share; }
std::optional<KeyShareEntry> decodeKeyShareServer(Bytes ext) {
  ByteReader r(ext);
  KeyShareEntry e;
  ByteReader key;
  if (!r.readU16(e.group) || !r.readU16Prefixed(key) || key.empty() || !r.empty()) return std::nullopt;
  e.key_exchange = key.rest();
  return e;
}

std::optional<std::uint16_t> decodeU16(Bytes ext) {
  ByteReader r(ext);
  std::uint16_t v = 0;
  if (!r.readU16(v) || !r.empty()) return std::nullopt;
  return v;
}

// RFC 8446 5.1: TLSPlaintext { type(1) legacy_record_version(2) length(2) fragment }.
// A handshake message may span several records; we gather fragments until the ClientHello's
// own length is satisfied.
HelloPeek peekClientHello(Bytes stream, std::size_t limit) {
  HelloPeek out;
  ByteReader r(stream);
  std::uint8_t first = 0;
  if (!r.readU8(first)) return out;
  if (first != 22) {
    // RFC 6101 E.2 / RFC 5246 E.2: SSLv2-compatible ClientHello has the high bit set and msg type 1.
    std::uint8_t b1 = 0, b2 = 0;
    if ((first & 0x80) && r.readU8(b1) && r.readU8(b2) && b2 == 1) {
      out.kind = HelloPeek::Kind::Malformed;
      out.error = "SSLv2-compatible ClientHello (not supported for interception)";
      return out;
    }
    out.kind = (first & 0x80) && r.remaining() < 2 ? HelloPeek::Kind::NeedMore : HelloPeek::Kind::NotTls;
    return out;
  }
  r = ByteReader(stream);
  while (true) {
    std::uint8_t type = 0;
    std::uint16_t version = 0;
    ByteReader frag;
    ByteReader save = r;
    if (!r.readU8(type) || !r.readU16(version)) return out;  // need more
    if (type != 22) {
      out.kind = HelloPeek::Kind::Malformed;
      out.error = "non-handshake record before the ClientHello was complete";
      return out;
    }
    if ((version >> 8) != 3) {
      out.kind = save.offset() == 0 ? HelloPeek::Kind::NotTls : HelloPeek::Kind::Malformed;
      out.error = "record version is not 3.x";
      return out;
    }
    std::uint16_t len = 0;
    if (!r.readU16(len)) return out;
    if (len == 0 || len > (1u << 14)) {  // RFC 8446 5.1: zero-length handshake fragments are not allowed
      out.kind = HelloPeek::Kind::Malformed;
      out.error = "bad record length " + std::to_string(len);
      return out;
    }
    if (!r.readReader(len, frag)) return out;
    auto b = frag.rest();
    out.message.insert(out.message.end(), b.begin(), b.end());
    if (out.message.size() > limit) {
      out.kind = HelloPeek::Kind::Malformed;
      out.error = "ClientHello larger than " + std::to_string(limit) + " bytes";
      return out;
    }
    auto hdr = decodeHandshakeHeader(out.message);
    if (out.message.size() >= 4 && hdr.value.type != 1) {
      out.kind = HelloPeek::Kind::Malformed;
      out.error = "first handshake message is not a ClientHello";
      return out;
    }
    if (hdr.status == Status::Ok) {
      if (out.message.size() != hdr.consumed) {
        out.kind = HelloPeek::Kind::Malformed;
        out.error = "data after the ClientHello in its record";
        return out;
      }
      out.kind = HelloPeek::Kind::ClientHello;
      return out;
    }
    if (hdr.value.length > limit) {
      out.kind = HelloPeek::Kind::Malformed;
      out.error = "ClientHello length " + std::to_string(hdr.value.length) + " exceeds limit";
      return out;
    }
  }
}

}  // namespace tlstrace::wire

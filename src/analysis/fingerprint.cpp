#include "analysis/fingerprint.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "tls/crypto.h"
#include "wire/byte_reader.h"
#include "wire/handshake.h"
#include "wire/registry.h"

namespace tlstrace::analysis {

namespace {

using tls::crypto::DigestAlg;

constexpr char kDigits[] = "0123456789abcdef";

std::string digestHex(const std::string& s, DigestAlg alg, std::size_t chars) {
  // One client build and one server bring the same hellos again and again, and a digest in
  // OpenSSL 3 (context, provider init, final) costs more than the rest of a fingerprint: the
  // last few inputs and their digests are kept per thread.
  struct Memo {
    bool used = false;
    DigestAlg alg = DigestAlg::Md5;
    std::string in, hex;
  };
  static thread_local std::array<Memo, 16> memo;
  static thread_local std::size_t next = 0;
  for (const Memo& m : memo)
    if (m.used && m.alg == alg && m.in == s) return m.hex.substr(0, chars);
  std::array<std::uint8_t, tls::crypto::kMaxDigestSize> out;
  const std::size_t n = tls::crypto::digest(alg, s, out);
  if (n == 0) return std::string(chars, '0');
  std::string h = wire::toHex({out.data(), n});
  memo[next++ % memo.size()] = {true, alg, s, h};
  return h.substr(0, chars);
}

template <typename T>
std::string joinDec(const std::vector<T>& v) {
  std::string s;
  for (auto x : v) {
    if (std::is_same_v<T, std::uint16_t> && wire::isGrease(static_cast<std::uint16_t>(x))) continue;
    if (!s.empty()) s += "-";
    s += std::to_string(x);
  }
  return s;
}

void appendHex4(std::uint16_t v, std::string& s) {
  const char b[] = {kDigits[v >> 12], kDigits[(v >> 8) & 0xf], kDigits[(v >> 4) & 0xf], kDigits[v & 0xf]};
  s.append(b, sizeof b);
}

std::string hex4(std::uint16_t v) {
  std::string s;
  appendHex4(v, s);
  return s;
}

std::vector<std::uint16_t> noGrease(const std::vector<std::uint16_t>& v) {
  std::vector<std::uint16_t> out;
  for (auto x : v)
    if (!wire::isGrease(x)) out.push_back(x);
  return out;
}

std::string joinHex(const std::vector<std::uint16_t>& v) {
  std::string s;
  for (auto x : v) {
    if (!s.empty()) s += ',';
    appendHex4(x, s);
  }
  return s;
}

// JA4 version field: the highest non-GREASE supported_versions entry, else the legacy version.
std::string ja4Version(std::uint16_t v) {
  switch (v) {
    case 0x0304: return "13";
    case 0x0303: return "12";
    case 0x0302: return "11";
    case 0x0301: return "10";
    case 0x0300: return "s3";
    case 0x0002: return "s2";
    default: return "00";
  }
}

std::string twoDigits(std::size_t n) {
  n = std::min<std::size_t>(n, 99);
  return {static_cast<char>('0' + n / 10), static_cast<char>('0' + n % 10)};
}

// First and last characters of the first ALPN value ("00" when none); non-alphanumeric
// characters are replaced by the first/last hex digit of the value, as the JA4 spec says.
std::string ja4Alpn(const std::vector<std::string>& alpn) {
  if (alpn.empty() || alpn.front().empty()) return "00";
  const std::string& a = alpn.front();
  const unsigned char f = static_cast<unsigned char>(a.front()), l = static_cast<unsigned char>(a.back());
  if (std::isalnum(f) && std::isalnum(l)) return std::string{static_cast<char>(f), static_cast<char>(l)};
  return std::string{kDigits[f >> 4], kDigits[l & 0xf]};
}

}  // namespace

Fingerprint ja3(const trace::HelloOffer& o) {
  Fingerprint f;
  std::vector<int> formats(o.point_formats.begin(), o.point_formats.end());
  f.text = std::to_string(o.legacy_version) + "," + joinDec(o.suites) + "," + joinDec(o.extensions) + "," +
           joinDec(o.groups) + "," + joinDec(formats);
  f.hash = digestHex(f.text, DigestAlg::Md5, 32);
  return f;
}

Fingerprint ja3s(const trace::ServerChoice& c) {
  Fingerprint f;
  f.text = std::to_string(c.legacy_version) + "," + std::to_string(c.suite) + "," + joinDec(c.extensions);
  f.hash = digestHex(f.text, DigestAlg::Md5, 32);
  return f;
}

std::string ja4Raw(const trace::HelloOffer& o) {
  auto suites = noGrease(o.suites);
  std::sort(suites.begin(), suites.end());
  std::vector<std::uint16_t> exts;
  for (auto e : noGrease(o.extensions))
    // JA4 leaves SNI and ALPN out of the extension hash (they show elsewhere in the fingerprint).
    if (e != static_cast<std::uint16_t>(wire::ExtensionType::ServerName) &&
        e != static_cast<std::uint16_t>(wire::ExtensionType::Alpn))
      exts.push_back(e);
  std::sort(exts.begin(), exts.end());
  std::string out = joinHex(suites);
  out += '|';
  out += joinHex(exts);
  if (auto sigs = noGrease(o.sigalgs); !sigs.empty()) {
    out += '_';
    out += joinHex(sigs);
  }
  return out;
}

std::string ja4(const trace::HelloOffer& o) {
  std::uint16_t version = o.legacy_version;
  for (auto v : noGrease(o.versions)) version = std::max(version, v);
  const auto suites = noGrease(o.suites);
  const auto exts = noGrease(o.extensions);
  std::string a = "t";
  a += ja4Version(version);
  a += o.sni.empty() ? 'i' : 'd';
  a += twoDigits(suites.size());
  a += twoDigits(exts.size());
  a += ja4Alpn(o.alpn);
  const std::string raw = ja4Raw(o);
  const auto bar = raw.find('|');
  const std::string b = suites.empty() ? "000000000000" : digestHex(raw.substr(0, bar), DigestAlg::Sha256, 12);
  const std::string c_in = raw.substr(bar + 1);
  const std::string c = c_in.empty() ? "000000000000" : digestHex(c_in, DigestAlg::Sha256, 12);
  return a + "_" + b + "_" + c;
}

std::string ja4s(const trace::ServerChoice& c) {
  const auto exts = noGrease(c.extensions);
  std::string a = "t";
  a += ja4Version(c.version);
  a += twoDigits(exts.size());
  a += ja4Alpn(c.alpn.empty() ? std::vector<std::string>{} : std::vector<std::string>{c.alpn});
  return a + "_" + hex4(c.suite) + "_" + digestHex(joinHex(exts), DigestAlg::Sha256, 12);
}

}  // namespace tlstrace::analysis

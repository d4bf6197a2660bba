#include "analysis/fingerprint.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "wire/registry.h"

namespace tlstrace::analysis {

namespace {

std::string digestHex(const std::string& s, const EVP_MD* md, std::size_t chars) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(s.data(), s.size(), out, &n, md, nullptr);
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string h;
  for (unsigned i = 0; i < n; ++i) {
    h.push_back(kDigits[out[i] >> 4]);
    h.push_back(kDigits[out[i] & 0xf]);
  }
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

std::string hex4(std::uint16_t v) {
  char b[8];
  std::snprintf(b, sizeof b, "%04x", v);
  return b;
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
    if (!s.empty()) s += ",";
    s += hex4(x);
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
  char b[8];
  std::snprintf(b, sizeof b, "%02zu", std::min<std::size_t>(n, 99));
  return b;
}

// First and last characters of the first ALPN value ("00" when none); non-alphanumeric
// characters are replaced by the first/last hex digit of the value, as the JA4 spec says.
std::string ja4Alpn(const std::vector<std::string>& alpn) {
  if (alpn.empty() || alpn.front().empty()) return "00";
  const std::string& a = alpn.front();
  const unsigned char f = static_cast<unsigned char>(a.front()), l = static_cast<unsigned char>(a.back());
  if (std::isalnum(f) && std::isalnum(l)) return std::string{static_cast<char>(f), static_cast<char>(l)};
  static constexpr char kDigits[] = "0123456789abcdef";
  return std::string{kDigits[f >> 4], kDigits[l & 0xf]};
}

}  // namespace

Fingerprint ja3(const trace::HelloOffer& o) {
  Fingerprint f;
  std::vector<int> formats(o.point_formats.begin(), o.point_formats.end());
  f.text = std::to_string(o.legacy_version) + "," + joinDec(o.suites) + "," + joinDec(o.extensions) + "," +
           joinDec(o.groups) + "," + joinDec(formats);
  f.hash = digestHex(f.text, EVP_md5(), 32);
  return f;
}

Fingerprint ja3s(const trace::ServerChoice& c) {
  Fingerprint f;
  f.text = std::to_string(c.legacy_version) + "," + std::to_string(c.suite) + "," + joinDec(c.extensions);
  f.hash = digestHex(f.text, EVP_md5(), 32);
  return f;
}

std::string ja4Raw(const trace::HelloOffer& o) {
  auto suites = noGrease(o.suites);
  std::sort(suites.begin(), suites.end());
  std::vector<std::uint16_t> exts;
  for (auto e : noGrease(o.extensions))
    if (e != 0x0000 && e != 0x0010) exts.push_back(e);
  std::sort(exts.begin(), exts.end());
  std::string c = joinHex(exts);
  auto sigs = noGrease(o.sigalgs);
  if (!sigs.empty()) c += "_" + joinHex(sigs);
  return joinHex(suites) + "|" + c;
}

std::string ja4(const trace::HelloOffer& o) {
  std::uint16_t version = o.legacy_version;
  for (auto v : noGrease(o.versions)) version = std::max(version, v);
  const auto suites = noGrease(o.suites);
  const auto exts = noGrease(o.extensions);
  std::string a = "t" + ja4Version(version) + (o.sni.empty() ? "i" : "d") + twoDigits(suites.size()) +
                  twoDigits(exts.size()) + ja4Alpn(o.alpn);
  const std::string raw = ja4Raw(o);
  const auto bar = raw.find('|');
  const std::string b = suites.empty() ? "000000000000" : digestHex(raw.substr(0, bar), EVP_sha256(), 12);
  const std::string c_in = raw.substr(bar + 1);
  const std::string c = c_in.empty() ? "000000000000" : digestHex(c_in, EVP_sha256(), 12);
  return a + "_" + b + "_" + c;
}

std::string ja4s(const trace::ServerChoice& c) {
  const auto exts = noGrease(c.extensions);
  std::string a = "t" + ja4Version(c.version) + twoDigits(exts.size()) +
                  ja4Alpn(c.alpn.empty() ? std::vector<std::string>{} : std::vector<std::string>{c.alpn});
  return a + "_" + hex4(c.suite) + "_" + digestHex(joinHex(exts), EVP_sha256(), 12);
}

}  // namespace tlstrace::analysis

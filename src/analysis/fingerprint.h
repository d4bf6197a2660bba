// TLS fingerprints: JA3/JA3S (Salesforce) and JA4/JA4S (FoxIO), from decoded hellos.
#pragma once
#include <string>

#include "trace/decoder.h"

namespace tlstrace::analysis {

struct Fingerprint {
  std::string text;  // the raw string before hashing (JA3) or the full fingerprint (JA4)
  std::string hash;  // JA3: MD5 of text; JA4: same as text
};

// One leg's hashes as its hello events showed them, so that conn.summary need not compute them
// again (empty: not computed).
struct LegFingerprints {
  std::string ja3, ja4, ja3s, ja4s;
};

[[nodiscard]] Fingerprint ja3(const trace::HelloOffer& o);
[[nodiscard]] Fingerprint ja3s(const trace::ServerChoice& c);
[[nodiscard]] std::string ja4(const trace::HelloOffer& o);
[[nodiscard]] std::string ja4s(const trace::ServerChoice& c);
// The pieces JA4 hashes, for tests and for users who want to see them.
[[nodiscard]] std::string ja4Raw(const trace::HelloOffer& o);

}  // namespace tlstrace::analysis

// The interception CA: created on first use (ECDSA P-256, 10 years), stored as ca.pem + ca.key
// (0600) in a 0700 directory, and refused when its key is readable by others or its directory is
// not private (another owner, or open to others).
#pragma once
#include <string>

#include "tls/ossl.h"

namespace tlstrace::pki {

struct CertAuthority {
  tls::X509Ptr cert;
  tls::EvpPkeyPtr key;
  std::string cert_path;
  std::string key_path;
};

// $TLSTRACE_HOME, else ~/.tlstrace.
[[nodiscard]] std::string defaultCaDir();

// Loads the CA in `dir`, creating it (and the directory) when absent. Throws on any problem.
// `created` tells whether it was made now.
[[nodiscard]] CertAuthority loadOrCreateCa(const std::string& dir, bool& created);
// Loads an existing CA from explicit PEM files (--ca-cert/--ca-key).
[[nodiscard]] CertAuthority loadCa(const std::string& cert_path, const std::string& key_path);
// Creates a new CA in memory.
[[nodiscard]] CertAuthority createCa(const std::string& common_name);

// Throws when `path` is readable or writable by group or others.
void checkPrivateFile(const std::string& path);
// Throws when `dir` is not a directory owned by this user, or is open to group or others (the
// CA directory: 0700).
void checkPrivateDir(const std::string& dir);

// "AB:CD:..." SHA-256 fingerprint of a certificate.
[[nodiscard]] std::string fingerprintSha256(X509* cert);
[[nodiscard]] std::string certificatePem(X509* cert);
// One-line subject ("/CN=...") and validity ("<notBefore> .. <notAfter>"), for `ca show`.
[[nodiscard]] std::string subjectLine(X509* cert);
[[nodiscard]] std::string validityLine(X509* cert);

}  // namespace tlstrace::pki

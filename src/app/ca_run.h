// `tlstrace ca`: create, show and export the interception CA, and print how to install it into
// each kind of trust store (tlstrace never changes a trust store itself).
#pragma once
#include <string>

#include "config/config.h"
#include "pki/ca.h"

namespace tlstrace::app {

struct CaOptions {
  std::string action;                 // init | show | export | install
  std::string format = "pem";         // export: pem | der | p12
  std::string output;                 // export: a file instead of stdout
  std::string password = "changeit";  // export p12 and the Java truststore
  std::string print;                  // install: system | java | nss | python | node
  std::string nssdb;                  // install nss: the NSS database directory (default ~/.pki/nssdb)
  std::string keystore;               // install java: the truststore to create (default beside the CA)
};

// The CA of `cfg` (--ca-cert/--ca-key, else --ca-dir, created on first use; `announce` says so).
[[nodiscard]] pki::CertAuthority loadCaFor(const config::ProxyConfig& cfg, bool announce);

// The shell lines that install `ca_file` into `store`, with comments; "" for an unknown store.
[[nodiscard]] std::string installRecipe(const std::string& store, const std::string& ca_file, const CaOptions& opt);

[[nodiscard]] int runCaCommand(const CaOptions& opt, const config::ProxyConfig& cfg);

}  // namespace tlstrace::app

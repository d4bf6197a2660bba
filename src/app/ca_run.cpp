#include "app/ca_run.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iostream>

#include "pki/ca_export.h"

namespace tlstrace::app {

pki::CertAuthority loadCaFor(const config::ProxyConfig& cfg, bool announce) {
  if (!cfg.ca_cert.empty()) return pki::loadCa(cfg.ca_cert, cfg.ca_key);
  bool created = false;
  pki::CertAuthority ca = pki::loadOrCreateCa(cfg.ca_dir, created);
  if (created && announce)
    spdlog::info("created a new interception CA in {} (install {} into your clients' trust store)", cfg.ca_dir,
                 ca.cert_path);
  return ca;
}

namespace {

// One word for sh: single quotes, each ' written as '\''.
std::string q(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string dirOf(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

std::string home() {
  const char* h = std::getenv("HOME");
  return h && *h ? h : ".";
}

}  // namespace

std::string installRecipe(const std::string& store, const std::string& ca, const CaOptions& opt) {
  if (store == "system")
    return "# Debian/Ubuntu system store (OpenSSL, curl, wget, Python ssl, Go, ...), as root:\n"
           "cp " +
           q(ca) +
           " /usr/local/share/ca-certificates/tlstrace.crt\n"
           "update-ca-certificates\n"
           "# undo: rm /usr/local/share/ca-certificates/tlstrace.crt && update-ca-certificates --fresh\n";
  if (store == "java") {
    const std::string ks = opt.keystore.empty() ? dirOf(ca) + "/truststore.p12" : opt.keystore;
    return "# Java: a PKCS#12 truststore holding the CA, given to each JVM:\n"
           "keytool -importcert -noprompt -alias tlstrace -file " +
           q(ca) + " -keystore " + q(ks) + " -storetype PKCS12 -storepass " + q(opt.password) +
           "\n"
           "export JAVA_TOOL_OPTIONS=" +
           q("-Djavax.net.ssl.trustStore=" + ks +
             " -Djavax.net.ssl.trustStoreType=PKCS12 -Djavax.net.ssl.trustStorePassword=" + opt.password) +
           "\n"
           "# (it replaces the JDK's cacerts for that JVM; into the JDK's own store instead, as root:\n"
           "#  keytool -importcert -noprompt -cacerts -storepass changeit -alias tlstrace -file " +
           q(ca) + ")\n";
  }
  if (store == "nss") {
    const std::string db = opt.nssdb.empty() ? home() + "/.pki/nssdb" : opt.nssdb;
    return "# NSS (Chromium and Firefox on Linux read ~/.pki/nssdb; a Firefox profile has its own cert9.db):\n"
           "mkdir -p " +
           q(db) +
           "\n"
           "[ -f " +
           q(db + "/cert9.db") + " ] || certutil -d sql:" + q(db) +
           " -N --empty-password\n"
           "certutil -d sql:" +
           q(db) + " -A -t C,, -n tlstrace -i " + q(ca) + "\n";
  }
  if (store == "python")
    return "# Python: requests reads only its own bundle (certifi) unless told; ssl, urllib and httpx\n"
           "# read SSL_CERT_FILE. Both replace the default roots for that process.\n"
           "export REQUESTS_CA_BUNDLE=" +
           q(ca) +
           "\n"
           "export SSL_CERT_FILE=" +
           q(ca) + "\n";
  if (store == "node")
    return "# Node.js: added to its bundled roots, read once at start:\n"
           "export NODE_EXTRA_CA_CERTS=" +
           q(ca) + "\n";
  return {};
}

namespace {

int exportCa(const CaOptions& opt, const pki::CertAuthority& ca) {
  auto* cert = ca.cert.get();
  std::string bytes;
  if (opt.format == "der") bytes = pki::certificateDer(cert);
  else if (opt.format == "p12") bytes = pki::certificateP12(cert, "tlstrace", opt.password);
  else bytes = pki::certificatePem(cert);
  if (opt.output.empty()) {
    if (opt.format != "pem" && isatty(1)) {
      spdlog::error("{} is binary: give -o FILE (or redirect stdout)", opt.format);
      return 2;
    }
    std::cout.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return std::cout.flush() ? 0 : 1;
  }
  std::ofstream out(opt.output, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out.flush()) {
    spdlog::error("cannot write {}", opt.output);
    return 1;
  }
  return 0;
}

}  // namespace

int runCaCommand(const CaOptions& opt, const config::ProxyConfig& cfg) {
  if (opt.action == "init") {
    bool created = false;
    pki::CertAuthority ca = pki::loadOrCreateCa(cfg.ca_dir, created);
    std::cout << (created ? "created " : "already present: ") << ca.cert_path << "\n";
    return 0;
  }
  pki::CertAuthority ca = loadCaFor(cfg, false);
  if (opt.action == "export") return exportCa(opt, ca);
  // The install lines name the real path, so that each can be pasted as it is.
  const std::string file = ca.cert_path.empty() ? cfg.ca_cert : ca.cert_path;
  if (opt.action == "install") {
    if (opt.print.empty()) {
      spdlog::error("ca install only prints the commands (tlstrace changes no trust store): add --print STORE");
      return 2;
    }
    std::cout << installRecipe(opt.print, file, opt);
    return 0;
  }
  std::cout << "certificate: " << file << "\n"
            << "subject:     " << pki::subjectLine(ca.cert.get()) << "\n"
            << "validity:    " << pki::validityLine(ca.cert.get()) << "\n"
            << "SHA-256:     " << pki::fingerprintSha256(ca.cert.get()) << "\n"
            << "install:     Debian/Ubuntu: cp " << file
            << " /usr/local/share/ca-certificates/tlstrace.crt && update-ca-certificates\n"
            << "             curl: --cacert " << file << "\n"
            << "             Python requests: REQUESTS_CA_BUNDLE=" << file << "\n"
            << "             Python ssl, urllib: SSL_CERT_FILE=" << file << "\n"
            << "             Node.js: NODE_EXTRA_CA_CERTS=" << file << "\n"
            << "             Java: keytool -importcert -noprompt -alias tlstrace -file " << file
            << " -keystore trust.p12 -storetype PKCS12 -storepass changeit\n"
            << "             each store's exact commands: tlstrace ca install --print system|java|nss|python|node\n"
            << "             more (Java through the proxy, reverse mode for Node.js): certs/README.md\n";
  return 0;
}

}  // namespace tlstrace::app

#include "pki/ca.h"

#include <fcntl.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "pki/x509_util.h"

namespace tlstrace::pki {

using namespace tlstrace::tls;

std::string defaultCaDir() {
  if (const char* h = std::getenv("TLSTRACE_HOME"); h && *h) return h;
  if (const char* home = std::getenv("HOME"); home && *home) return std::string(home) + "/.tlstrace";
  return ".tlstrace";
}

void checkPrivateFile(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw std::runtime_error("cannot stat " + path + ": " + std::strerror(errno));
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw std::runtime_error("refusing to use private key " + path + ": its mode is " + mode +
                             ", readable by others; run `chmod 600 " + path + "`");
  }
}

void checkPrivateDir(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) throw std::runtime_error("cannot stat " + dir + ": " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) throw std::runtime_error("CA directory " + dir + " is not a directory");
  // Its owner could replace the CA (rename is the directory's, not the files'), and a directory
  // others may enter lets them find and watch the key.
  if (st.st_uid != ::geteuid())
    throw std::runtime_error("refusing to use CA directory " + dir + ": it belongs to uid " +
                             std::to_string(st.st_uid) + ", not to this user (uid " + std::to_string(::geteuid()) +
                             "), who could replace the CA; use a directory of your own (--ca-dir)");
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw std::runtime_error("refusing to use CA directory " + dir + ": its mode is " + mode +
                             ", open to others; run `chmod 700 " + dir + "`");
  }
}

namespace {

void writeFile(const std::string& path, const std::string& data, mode_t mode) {
  // O_EXCL: never overwrite an existing CA; mode applies at creation, before any byte is written.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) throw std::runtime_error("cannot create " + path + ": " + std::strerror(errno));
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n <= 0) {
      ::close(fd);
      throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
    }
    off += static_cast<std::size_t>(n);
  }
  ::fchmod(fd, mode);
  ::close(fd);
}

std::string keyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr))
    throw OpensslError("cannot encode CA key");
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

}  // namespace

std::string certificatePem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_X509(bio.get(), cert)) throw OpensslError("cannot encode certificate");
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

std::string fingerprintSha256(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  X509_digest(cert, EVP_sha256(), md, &n);
  std::string out;
  for (unsigned i = 0; i < n; ++i) {
    char b[4];
    std::snprintf(b, sizeof b, i ? ":%02X" : "%02X", md[i]);
    out += b;
  }
  return out;
}

CertAuthority createCa(const std::string& common_name) {
  CertAuthority ca;
  ca.key = generateP256Key();
  ca.cert.reset(X509_new());
  X509* x = ca.cert.get();
  if (!x) throw OpensslError("X509_new");
  X509_set_version(x, 2);
  setRandomSerial(x);
  // Backdated a day so that clients with a slightly slow clock accept it at once.
  X509_gmtime_adj(X509_getm_notBefore(x), -24L * 3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 24 * 3600);
  X509NamePtr name(X509_NAME_new());
  X509_NAME_add_entry_by_txt(name.get(), "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("tlstrace"), -1, -1,
                             0);
  X509_NAME_add_entry_by_txt(name.get(), "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1, 0);
  X509_set_subject_name(x, name.get());
  X509_set_issuer_name(x, name.get());
  X509_set_pubkey(x, ca.key.get());
  // RFC 5280 4.2.1.9 / 4.2.1.3 / 4.2.1.2.
  addExtension(x, x, NID_basic_constraints, "critical,CA:TRUE");
  addExtension(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
  addExtension(x, x, NID_subject_key_identifier, "hash");
  addExtension(x, x, NID_authority_key_identifier, "keyid:always");
  if (!X509_sign(x, ca.key.get(), EVP_sha256())) throw OpensslError("cannot sign CA certificate");
  return ca;
}

CertAuthority loadCa(const std::string& cert_path, const std::string& key_path) {
  checkPrivateFile(key_path);
  CertAuthority ca;
  ca.cert_path = cert_path;
  ca.key_path = key_path;
  BioPtr cb(BIO_new_file(cert_path.c_str(), "r"));
  if (!cb) throw OpensslError("cannot open CA certificate " + cert_path);
  ca.cert.reset(PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr));
  if (!ca.cert) throw OpensslError("cannot read CA certificate " + cert_path);
  BioPtr kb(BIO_new_file(key_path.c_str(), "r"));
  if (!kb) throw OpensslError("cannot open CA key " + key_path);
  ca.key.reset(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
  if (!ca.key) throw OpensslError("cannot read CA key " + key_path);
  if (X509_check_private_key(ca.cert.get(), ca.key.get()) != 1)
    throw OpensslError("CA key " + key_path + " does not match " + cert_path);
  return ca;
}

CertAuthority loadOrCreateCa(const std::string& dir, bool& created) {
  created = false;
  const std::string cert_path = dir + "/ca.pem";
  const std::string key_path = dir + "/ca.key";
  std::error_code ec;
  if (std::filesystem::exists(cert_path, ec) || std::filesystem::exists(key_path, ec)) {
    checkPrivateDir(dir);
    return loadCa(cert_path, key_path);
  }
  // Parents as needed (a new $TLSTRACE_HOME or --ca-dir), the CA directory itself 0700.
  const auto parent = std::filesystem::path(dir).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    throw std::runtime_error("cannot create CA directory " + dir + ": " + std::strerror(errno));
  // A directory that was already there (empty of a CA) becomes the CA's: narrowed if it is ours.
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0 && st.st_uid == ::geteuid()) ::chmod(dir.c_str(), 0700);
  checkPrivateDir(dir);
  CertAuthority ca = createCa("tlstrace interception CA");
  writeFile(key_path, keyPem(ca.key.get()), 0600);
  writeFile(cert_path, certificatePem(ca.cert.get()), 0644);
  ca.cert_path = cert_path;
  ca.key_path = key_path;
  created = true;
  return ca;
}

std::string subjectLine(X509* cert) {
  char subject[512];
  X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof subject);
  return subject;
}

std::string validityLine(X509* cert) {
  tls::BioPtr bio(BIO_new(BIO_s_mem()));
  ASN1_TIME_print(bio.get(), X509_get0_notBefore(cert));
  BIO_puts(bio.get(), " .. ");
  ASN1_TIME_print(bio.get(), X509_get0_notAfter(cert));
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

}  // namespace tlstrace::pki

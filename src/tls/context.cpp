#include "tls/context.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <cstdlib>

#include "tls/engine.h"

namespace tlstrace::tls {

int protocolVersion(const std::string& s) {
  if (s.empty()) return 0;
  std::string v = s.rfind("TLSv", 0) == 0 ? s.substr(4) : s;
  if (v == "1" || v == "1.0") return TLS1_VERSION;
  if (v == "1.1") return TLS1_1_VERSION;
  if (v == "1.2") return TLS1_2_VERSION;
  if (v == "1.3") return TLS1_3_VERSION;
  throw std::runtime_error("unknown TLS version '" + s + "' (use 1.0, 1.1, 1.2 or 1.3)");
}

VersionRange acceptedVersions(SSL_CTX* ctx) {
  VersionRange r;
  r.min = static_cast<std::uint16_t>(SSL_CTX_get_min_proto_version(ctx));
  r.max = static_cast<std::uint16_t>(SSL_CTX_get_max_proto_version(ctx));
  if (SSL_CTX_get_security_level(ctx) >= 1 && r.min < TLS1_2_VERSION) r.min = TLS1_2_VERSION;
  return r;
}

namespace {

void applyLegOptions(SSL_CTX* ctx, const LegOptions& opt, const char* leg) {
  const std::string where = std::string(" (") + leg + " leg)";
  if (int v = protocolVersion(opt.min_version); v && !SSL_CTX_set_min_proto_version(ctx, v))
    throw OpensslError("cannot set minimum version" + where);
  if (int v = protocolVersion(opt.max_version); v && !SSL_CTX_set_max_proto_version(ctx, v))
    throw OpensslError("cannot set maximum version" + where);
  // TLS 1.0/1.1 need security level 0 in OpenSSL 3; a debugging proxy must be able to speak them.
  if (protocolVersion(opt.min_version) != 0 && protocolVersion(opt.min_version) < TLS1_2_VERSION)
    SSL_CTX_set_security_level(ctx, 0);
  if (!opt.ciphers.empty() && !SSL_CTX_set_cipher_list(ctx, opt.ciphers.c_str()))
    throw OpensslError("bad cipher list '" + opt.ciphers + "'" + where);
  if (!opt.ciphersuites.empty() && !SSL_CTX_set_ciphersuites(ctx, opt.ciphersuites.c_str()))
    throw OpensslError("bad TLS 1.3 cipher suites '" + opt.ciphersuites + "'" + where);
  if (!opt.groups.empty() && !SSL_CTX_set1_groups_list(ctx, opt.groups.c_str()))
    throw OpensslError("bad groups '" + opt.groups + "'" + where);
}

}  // namespace

SslCtxPtr makeClientFacingContext(const LegOptions& opt, const std::string& dhparam_file) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) throw OpensslError("SSL_CTX_new");
  applyLegOptions(ctx.get(), opt, "client");
  if (dhparam_file.empty()) {
    SSL_CTX_set_dh_auto(ctx.get(), 1);
  } else {
    BioPtr bio(BIO_new_file(dhparam_file.c_str(), "r"));
    if (!bio) throw OpensslError("cannot open --dhparam " + dhparam_file);
    EvpPkeyPtr dh(PEM_read_bio_Parameters(bio.get(), nullptr));
    if (!dh) throw OpensslError("cannot read DH parameters from " + dhparam_file);
    if (!SSL_CTX_set0_tmp_dh_pkey(ctx.get(), dh.get())) throw OpensslError("SSL_CTX_set0_tmp_dh_pkey");
    (void)dh.release();  // the context owns it now
  }
  // Idle connections give their record buffers back (a proxy holds thousands of them).
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  // Clients see one session-ticket-capable server; resumption on this leg saves them a handshake.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_SERVER);
  SSL_CTX_set_session_id_context(ctx.get(), reinterpret_cast<const unsigned char*>("tlstrace"), 8);
  // One TLS 1.3 ticket per handshake, not OpenSSL's two: a client that resumes gets a fresh one
  // each time, and each ticket costs ~180 K instructions (a session copy, its encryption and MAC).
  SSL_CTX_set_num_tickets(ctx.get(), 1);
  TlsEngine::prepareContext(ctx.get());
  return ctx;
}

// The system trust bundle, honouring $SSL_CERT_FILE as OpenSSL's own default paths (and so
// s_client, curl, Python) do.
namespace {
const char* systemBundle() {
  const char* env = std::getenv(X509_get_default_cert_file_env());
  return env && *env ? env : X509_get_default_cert_file();
}
}  // namespace

SslCtxPtr makeUpstreamContext(const LegOptions& opt, const std::string& ca_file, bool insecure) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) throw OpensslError("SSL_CTX_new");
  applyLegOptions(ctx.get(), opt, "upstream");
  if (!ca_file.empty()) {
    if (!SSL_CTX_load_verify_locations(ctx.get(), ca_file.c_str(), nullptr))
      throw OpensslError("cannot load --upstream-ca " + ca_file);
  } else if (!SSL_CTX_load_verify_file(ctx.get(), systemBundle())) {
    // The system bundle is loaded into memory once: the hashed-directory lookup that
    // set_default_verify_paths adds reads the directory on every miss (every untrusted server).
    ERR_clear_error();
    if (!SSL_CTX_set_default_verify_paths(ctx.get())) throw OpensslError("cannot load the system trust store");
  }
  // With --insecure the chain is still verified (for the tls.trust verdict) but never enforced.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_verify(ctx.get(), insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, TlsEngine::verifyCallback);
  TlsEngine::prepareContext(ctx.get());
  return ctx;
}

}  // namespace tlstrace::tls

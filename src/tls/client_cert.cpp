#include "tls/client_cert.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include "tls/cert_summary.h"

namespace tlstrace::tls {

using trace::Json;

ClientIdentity loadClientIdentity(const std::string& cert_file, const std::string& key_file) {
  ClientIdentity id;
  BioPtr bio(BIO_new_file(cert_file.c_str(), "r"));
  if (!bio) throw OpensslError("cannot open the client certificate " + cert_file);
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    if (!id.cert) id.cert.reset(x);
    else id.chain.emplace_back(x);
  }
  ERR_clear_error();  // the end of the file reads as an error
  if (!id.cert) throw OpensslError("no PEM certificate in " + cert_file);
  const std::string& kf = key_file.empty() ? cert_file : key_file;
  BioPtr kbio(BIO_new_file(kf.c_str(), "r"));
  if (!kbio) throw OpensslError("cannot open the client key " + kf);
  id.key.reset(PEM_read_bio_PrivateKey(kbio.get(), nullptr, nullptr, nullptr));
  if (!id.key) throw OpensslError("no PEM private key in " + kf);
  if (X509_check_private_key(id.cert.get(), id.key.get()) != 1)
    throw OpensslError("the key in " + kf + " does not match the certificate in " + cert_file);
  return id;
}

bool presentClientIdentity(SSL* ssl, const ClientIdentity& id, std::string& error) {
  ERR_clear_error();
  bool ok = SSL_use_certificate(ssl, id.cert.get()) == 1 && SSL_use_PrivateKey(ssl, id.key.get()) == 1;
  if (ok && !id.chain.empty()) {
    STACK_OF(X509)* sk = sk_X509_new_null();
    for (const auto& c : id.chain) ok = ok && sk && sk_X509_push(sk, c.get()) > 0;
    ok = ok && SSL_set1_chain(ssl, sk) == 1;  // takes its own references
    sk_X509_free(sk);
  }
  if (!ok) error = "cannot use the client certificate (" + id.source + "): " + errorQueueText();
  return ok;
}

namespace {
// The client's chain is verified for the trace only: the first failure is reported, the handshake
// goes on (a debugging proxy shows what a client sends, it does not gate it).
int reportOnlyVerify(int preverify_ok, X509_STORE_CTX* store) {
  (void)TlsEngine::verifyCallback(preverify_ok, store);
  return 1;
}
}  // namespace

void requestClientCertificates(SSL_CTX* ctx, const std::string& ca_file) {
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, reportOnlyVerify);
  if (ca_file.empty()) return;
  if (!SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr))
    throw OpensslError("cannot load --client-ca " + ca_file);
  // RFC 5246 7.4.4 certificate_authorities / RFC 8446 4.2.4: the CAs a client may choose from.
  STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(ca_file.c_str());
  if (!names) throw OpensslError("no CA certificate in --client-ca " + ca_file);
  SSL_CTX_set_client_CA_list(ctx, names);
}

Json clientCertificateFields(SSL* ssl, bool presented_by_proxy, bool verify, const VerifyFailure& failure,
                             CertSummaryCache* cache) {
  auto summary = [cache](X509* c) { return cache ? cache->get(c) : summarizeCertificate(c); };
  Json j = Json::object();
  Json chain = Json::array();
  X509* leaf = presented_by_proxy ? SSL_get_certificate(ssl) : SSL_get0_peer_certificate(ssl);
  if (leaf) chain.push(summary(leaf));
  STACK_OF(X509)* rest = nullptr;
  if (presented_by_proxy) SSL_get0_chain_certs(ssl, &rest);
  else rest = SSL_get_peer_cert_chain(ssl);  // server side: without the leaf
  for (int i = 0; rest && i < sk_X509_num(rest); ++i) chain.push(summary(sk_X509_value(rest, i)));
  j.set("chain", std::move(chain));
  if (verify && leaf) {
    long res = SSL_get_verify_result(ssl);
    if (failure.error != 0) res = failure.error;  // the first failure, not OpenSSL's last one
    j.set("verified", res == X509_V_OK);
    if (res != X509_V_OK) j.set("error", std::string(X509_verify_cert_error_string(res)));
    if (failure.depth >= 0) j.set("depth", failure.depth);
  }
  return j;
}

}  // namespace tlstrace::tls

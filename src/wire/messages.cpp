#include "wire/messages.h"

#include "wire/registry.h"

namespace tlstrace::wire {

namespace {

bool extensionBlock(ByteReader& r, std::vector<Extension>& out) {
  DecodeError ignored;  // the callers report their own, more specific, error
  return readExtensionList(r, out, ignored);
}

// DigitallySigned (RFC 5246 4.7): with a SignatureAndHashAlgorithm in TLS 1.2, without before.
// The two layouts are told apart by which one consumes the rest exactly.
bool signedParams(ByteReader& r, SignedParams& out) {
  ByteReader with = r;
  std::uint16_t scheme = 0;
  ByteReader sig;
  if (with.readU16(scheme) && with.readU16Prefixed(sig) && with.empty()) {
    out.scheme = scheme;
    out.signature = sig.rest();
    r = with;
    return true;
  }
  ByteReader without = r;
  if (without.readU16Prefixed(sig) && without.empty()) {
    out.signature = sig.rest();
    r = without;
    return true;
  }
  return false;
}

bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

}  // namespace

KexKind kexOfSuite(std::uint16_t suite) {
  if ((suite >> 8) == 0x13) return KexKind::Tls13;
  const std::string_view n = cipherSuiteName(suite);
  if (n == "unknown" || n == "GREASE") return KexKind::Unknown;
  if (contains(n, "_ECDHE_PSK_")) return KexKind::EcdhePsk;
  if (contains(n, "_DHE_PSK_")) return KexKind::DhePsk;
  if (contains(n, "_RSA_PSK_")) return KexKind::RsaPsk;
  if (n.starts_with("TLS_PSK_")) return KexKind::Psk;
  if (contains(n, "_ECDHE_")) return KexKind::Ecdhe;
  if (contains(n, "_DHE_")) return KexKind::Dhe;
  if (contains(n, "_DH_anon_")) return KexKind::DhAnon;
  if (contains(n, "_ECDH_anon_")) return KexKind::EcdhAnon;
  if (n.starts_with("TLS_RSA_")) return KexKind::Rsa;
  return KexKind::Unknown;
}

std::string_view kexName(KexKind k) {
  switch (k) {
    case KexKind::Rsa: return "RSA";
    case KexKind::Dhe: return "DHE";
    case KexKind::Ecdhe: return "ECDHE";
    case KexKind::Psk: return "PSK";
    // PSK first, as the event schema spells them (docs/events.md, tls.key_exchange.kex).
    case KexKind::DhePsk: return "PSK_DHE";
    case KexKind::EcdhePsk: return "PSK_ECDHE";
    case KexKind::RsaPsk: return "PSK_RSA";
    case KexKind::DhAnon: return "DH_anon";
    case KexKind::EcdhAnon: return "ECDH_anon";
    case KexKind::Tls13: return "TLS1.3";
    case KexKind::Unknown: break;
  }
  return "unknown";
}

Decoded<Certificate> decodeCertificate(Bytes body, bool tls13) {
  ByteReader r(body, 4);
  Certificate c;
  if (tls13) {
    ByteReader ctx;
    if (!r.readU8Prefixed(ctx)) return malformedAt<Certificate>(r, "bad certificate_request_context");
    c.request_context = ctx.rest();
  }
  ByteReader list;
  if (!r.readU24Prefixed(list) || !r.empty()) return malformedAt<Certificate>(r, "bad certificate_list length");
  while (!list.empty()) {
    CertificateEntry e;
    ByteReader der;
    if (!list.readU24Prefixed(der) || der.empty()) return malformedAt<Certificate>(list, "bad certificate entry");
    e.cert_data = der.rest();
    if (tls13 && !extensionBlock(list, e.extensions))
      return malformedAt<Certificate>(list, "bad certificate entry extensions");
    c.entries.push_back(std::move(e));
  }
  return decodedOk(std::move(c), body.size());
}

Decoded<ServerKeyExchange> decodeServerKeyExchange(Bytes body, KexKind kind) {
  ByteReader r(body, 4);
  ServerKeyExchange s;
  s.kind = kind;
  const bool psk =
      kind == KexKind::Psk || kind == KexKind::DhePsk || kind == KexKind::EcdhePsk || kind == KexKind::RsaPsk;
  if (psk) {  // RFC 4279 2: psk_identity_hint first
    ByteReader hint;
    if (!r.readU16Prefixed(hint)) return malformedAt<ServerKeyExchange>(r, "bad psk_identity_hint");
    s.psk_identity_hint = hint.rest();
  }
  if (kind == KexKind::Dhe || kind == KexKind::DhePsk || kind == KexKind::DhAnon) {
    ByteReader p, g, ys;
    if (!r.readU16Prefixed(p) || p.empty()) return malformedAt<ServerKeyExchange>(r, "bad dh_p");
    if (!r.readU16Prefixed(g) || g.empty()) return malformedAt<ServerKeyExchange>(r, "bad dh_g");
    if (!r.readU16Prefixed(ys) || ys.empty()) return malformedAt<ServerKeyExchange>(r, "bad dh_Ys");
    s.p = p.rest();
    s.g = g.rest();
    s.ys = ys.rest();
  } else if (kind == KexKind::Ecdhe || kind == KexKind::EcdhePsk || kind == KexKind::EcdhAnon) {
    if (!r.readU8(s.curve_type)) return malformedAt<ServerKeyExchange>(r, "truncated curve_type");
    if (s.curve_type != 3)  // RFC 8422 5.4: only named_curve is allowed
      return malformedAt<ServerKeyExchange>(
          r, "curve_type " + std::to_string(s.curve_type) + " (only named_curve=3 is valid)");
    ByteReader point;
    if (!r.readU16(s.named_curve)) return malformedAt<ServerKeyExchange>(r, "truncated named_curve");
    if (!r.readU8Prefixed(point) || point.empty()) return malformedAt<ServerKeyExchange>(r, "bad ECPoint");
    s.point = point.rest();
  } else if (!psk) {
    return malformedAt<ServerKeyExchange>(r, "ServerKeyExchange for a key exchange that has none");
  }
  const bool anonymous = psk || kind == KexKind::DhAnon || kind == KexKind::EcdhAnon;
  if (!anonymous) {
    SignedParams sp;
    if (!signedParams(r, sp)) return malformedAt<ServerKeyExchange>(r, "bad signature");
    s.signed_params = sp;
  }
  if (!r.empty()) return malformedAt<ServerKeyExchange>(r, "trailing bytes");
  return decodedOk(s, body.size());
}

Decoded<ClientKeyExchange> decodeClientKeyExchange(Bytes body, KexKind kind) {
  ByteReader r(body, 4);
  ClientKeyExchange c;
  c.kind = kind;
  const bool psk =
      kind == KexKind::Psk || kind == KexKind::DhePsk || kind == KexKind::EcdhePsk || kind == KexKind::RsaPsk;
  if (psk) {
    ByteReader id;
    if (!r.readU16Prefixed(id)) return malformedAt<ClientKeyExchange>(r, "bad psk_identity");
    c.psk_identity = id.rest();
  }
  ByteReader v;
  switch (kind) {
    case KexKind::Rsa:
    case KexKind::RsaPsk:
      if (!r.readU16Prefixed(v)) return malformedAt<ClientKeyExchange>(r, "bad EncryptedPreMasterSecret");
      c.encrypted_premaster = v.rest();
      break;
    case KexKind::Dhe:
    case KexKind::DhePsk:
    case KexKind::DhAnon:
      if (!r.readU16Prefixed(v) || v.empty()) return malformedAt<ClientKeyExchange>(r, "bad dh_Yc");
      c.public_value = v.rest();
      break;
    case KexKind::Ecdhe:
    case KexKind::EcdhePsk:
    case KexKind::EcdhAnon:
      if (!r.readU8Prefixed(v) || v.empty()) return malformedAt<ClientKeyExchange>(r, "bad ECPoint");
      c.public_value = v.rest();
      break;
    case KexKind::Psk: break;
    default: return malformedAt<ClientKeyExchange>(r, "unknown key exchange");
  }
  if (!r.empty()) return malformedAt<ClientKeyExchange>(r, "trailing bytes");
  return decodedOk(c, body.size());
}

Decoded<CertificateRequest> decodeCertificateRequest(Bytes body, std::uint16_t version) {
  ByteReader r(body, 4);
  CertificateRequest c;
  if (version >= 0x0304) {
    ByteReader ctx;
    if (!r.readU8Prefixed(ctx)) return malformedAt<CertificateRequest>(r, "bad certificate_request_context");
    c.request_context = ctx.rest();
    if (!extensionBlock(r, c.extensions) || !r.empty()) return malformedAt<CertificateRequest>(r, "bad extensions");
    return decodedOk(std::move(c), body.size());
  }
  ByteReader types;
  if (!r.readU8Prefixed(types) || types.empty()) return malformedAt<CertificateRequest>(r, "bad certificate_types");
  auto tb = types.rest();
  c.certificate_types.assign(tb.begin(), tb.end());
  if (version >= 0x0303) {  // supported_signature_algorithms appeared in TLS 1.2
    ByteReader algs;
    if (!r.readU16Prefixed(algs) || algs.remaining() % 2 != 0 || algs.empty())
      return malformedAt<CertificateRequest>(r, "bad supported_signature_algorithms");
    while (!algs.empty()) {
      std::uint16_t a = 0;
      (void)algs.readU16(a);
      c.signature_algorithms.push_back(a);
    }
  }
  ByteReader cas;
  if (!r.readU16Prefixed(cas) || !r.empty()) return malformedAt<CertificateRequest>(r, "bad certificate_authorities");
  while (!cas.empty()) {
    ByteReader dn;
    if (!cas.readU16Prefixed(dn)) return malformedAt<CertificateRequest>(cas, "bad DistinguishedName");
    c.certificate_authorities.push_back(dn.rest());
  }
  return decodedOk(std::move(c), body.size());
}

Decoded<SignedParams> decodeCertificateVerify(Bytes body) {
  ByteReader r(body, 4);
  SignedParams sp;
  if (!signedParams(r, sp)) return malformedAt<SignedParams>(r, "bad signature");
  return decodedOk(sp, body.size());
}

Decoded<NewSessionTicket> decodeNewSessionTicket(Bytes body, bool tls13) {
  ByteReader r(body, 4);
  NewSessionTicket t;
  if (!r.readU32(t.lifetime)) return malformedAt<NewSessionTicket>(r, "truncated ticket_lifetime");
  if (tls13) {
    ByteReader nonce;
    if (!r.readU32(t.age_add)) return malformedAt<NewSessionTicket>(r, "truncated ticket_age_add");
    if (!r.readU8Prefixed(nonce)) return malformedAt<NewSessionTicket>(r, "bad ticket_nonce");
    t.nonce = nonce.rest();
  }
  ByteReader ticket;
  if (!r.readU16Prefixed(ticket)) return malformedAt<NewSessionTicket>(r, "bad ticket");
  if (tls13 && ticket.empty()) return malformedAt<NewSessionTicket>(r, "empty ticket");
  t.ticket = ticket.rest();
  if (tls13 && !extensionBlock(r, t.extensions)) return malformedAt<NewSessionTicket>(r, "bad extensions");
  if (!r.empty()) return malformedAt<NewSessionTicket>(r, "trailing bytes");
  return decodedOk(std::move(t), body.size());
}

Decoded<std::vector<Extension>> decodeEncryptedExtensions(Bytes body) {
  ByteReader r(body, 4);
  std::vector<Extension> exts;
  if (!extensionBlock(r, exts) || !r.empty()) return malformedAt<std::vector<Extension>>(r, "bad extensions");
  return decodedOk(std::move(exts), body.size());
}

Decoded<CertificateStatus> decodeCertificateStatus(Bytes body) {
  ByteReader r(body, 4);
  CertificateStatus s;
  ByteReader resp;
  if (!r.readU8(s.status_type)) return malformedAt<CertificateStatus>(r, "truncated status_type");
  if (!r.readU24Prefixed(resp) || resp.empty() || !r.empty())
    return malformedAt<CertificateStatus>(r, "bad OCSPResponse");
  s.response = resp.rest();
  return decodedOk(s, body.size());
}

std::optional<PreSharedKey> decodePreSharedKey(Bytes ext, bool from_client) {
  ByteReader r(ext);
  PreSharedKey psk;
  if (!from_client) {
    std::uint16_t sel = 0;
    if (!r.readU16(sel) || !r.empty()) return std::nullopt;
    psk.selected_identity = sel;
    return psk;
  }
  ByteReader ids, binders;
  if (!r.readU16Prefixed(ids) || !r.readU16Prefixed(binders) || !r.empty()) return std::nullopt;
  while (!ids.empty()) {
    PskIdentity id;
    ByteReader b;
    if (!ids.readU16Prefixed(b) || b.empty() || !ids.readU32(id.obfuscated_ticket_age)) return std::nullopt;
    id.identity = b.rest();
    psk.identities.push_back(id);
  }
  while (!binders.empty()) {
    ByteReader b;
    if (!binders.readU8Prefixed(b) || b.remaining() < 32) return std::nullopt;
    psk.binders.push_back(b.rest());
  }
  return psk;
}

std::optional<std::vector<Bytes>> decodeCertificateAuthorities(Bytes ext) {
  ByteReader r(ext);
  ByteReader list;
  if (!r.readU16Prefixed(list) || !r.empty()) return std::nullopt;
  std::vector<Bytes> out;
  while (!list.empty()) {
    ByteReader dn;
    if (!list.readU16Prefixed(dn) || dn.empty()) return std::nullopt;
    out.push_back(dn.rest());
  }
  return out;
}

int maxFragmentLength(std::uint8_t code) {
  switch (code) {
    case 1: return 512;
    case 2: return 1024;
    case 3: return 2048;
    case 4: return 4096;
    default: return 0;
  }
}

}  // namespace tlstrace::wire

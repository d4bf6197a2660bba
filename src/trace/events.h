// The event kinds of docs/events.md, one struct each, filled by the code that knows the facts.
//
// Each struct lists its fields once, in the documented order, in `fields(self, visitor)`: the JSON
// line writer, the tree builder (text renderers, `convert`) and the reader (`convert`) all walk that
// one list, so the kinds cannot drift between them. A field that is `std::optional` is left out
// when empty; a `Nullable` one is written as null. Deep, variable-shaped parts (a decoded message
// body, a certificate chain, the key-exchange analysis, the connection summary) are JSON trees
// built by the decoder and analysis/, and stay `Json`. The TCP half's kinds are in
// trace/events_tcp.h, what every kind is made of in trace/events_base.h.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "trace/events_base.h"
#include "trace/events_tcp.h"

namespace tlstrace::trace {
namespace ev {

// A client connected.
struct ConnOpen {
  std::string client, listen, mode;
  std::optional<std::string> target;  // known at once (reverse mode)
  TLSTRACE_EVENT("conn.open", kCore);
};
// Explicit mode: the request head was parsed.
struct ProxyRequest {
  std::string method, target;
  TLSTRACE_EVENT("proxy.request", kCore);
};
// Explicit mode: the proxy answered with an HTTP error.
struct ProxyError {
  std::int64_t status = 0;
  std::string reason;
  TLSTRACE_EVENT("proxy.error", kCore);
};
// A client was turned away: at accept time, or when its target is refused (exposure rules).
struct ConnRefused {
  std::string client, reason;
  // A short token where one applies (transparent mode: loop, no_original_dst; SOCKS5: socks_auth_failed, ...).
  std::optional<std::string> cause;
  TLSTRACE_EVENT("conn.refused", kCore);
};
// An output lost events or lines (a write error, a FIFO nobody reads, a stalled trace writer):
// a counter, written to the outputs that still work. Process-wide: conn 0.
struct TraceDropped {
  std::string output;                // events, trace, keylog, pcap, or queue (before any output)
  std::optional<std::string> path;   // the file ("stdout", "stderr"); absent for the queue
  std::string unit;                  // events, lines or blocks
  std::uint64_t lost = 0;            // since this output's previous trace.dropped
  std::uint64_t total = 0;           // in this run so far
  std::optional<std::string> error;  // why (strerror text, "no reader on the FIFO", ...)
  TLSTRACE_EVENT("trace.dropped", kCore);
};
// The upstream TCP connection was made (peer, local, target, connect_ms) or not (peer, error).
struct TcpConnect {
  std::string peer;
  std::optional<std::string> local, target;
  std::optional<double> connect_ms;
  std::optional<std::string> error;
  // Through --upstream-proxy: its URL (never the credentials), the hop that failed or "target"
  // once the tunnel is open, the proxy's reply, and how long the tunnel took after the TCP connect.
  std::optional<std::string> via = std::nullopt, hop = std::nullopt;
  std::optional<std::int64_t> proxy_status = std::nullopt;
  std::optional<std::string> proxy_reply = std::nullopt;
  std::optional<double> tunnel_ms = std::nullopt;
  TLSTRACE_EVENT("tcp.connect", kTcp);
};
// The client's first bytes are not TLS: relayed as plain TCP.
struct ConnPlaintext {
  std::string reason, first_bytes;
  TLSTRACE_EVENT("conn.plaintext", kCore);
};
// One message of a STARTTLS preamble (session/starttls.h), on the leg it was read from.
struct ConnStartTls {
  std::string proto, step, text;
  TLSTRACE_EVENT("conn.starttls", kCore);
};
// One handshake message (or ChangeCipherSpec), decoded.
struct TlsMessage {
  std::string dir, type;
  std::uint64_t length = 0;
  Body body;  // (an empty object)
  std::optional<Json> fingerprints;
  TLSTRACE_EVENT("tls.message", kHandshake);
};
// What --mirror-client offered upstream (tls::mirrorClientOffer).
struct TlsMirror {
  Report report;
  TLSTRACE_EVENT("tls.mirror", kHandshake);
};
// One TLS record header (RFC 8446 5.1).
struct TlsRecord {
  bool in = false;
  std::uint8_t content_type = 0;
  std::uint16_t version = 0;  // legacy_record_version, written by name
  std::uint64_t length = 0;
  TLSTRACE_EVENT("tls.record", kRecord);
};
// One NSS key-log line's label (and secret with --log-secrets).
struct TlsSecret {
  std::string label, client_random;
  std::optional<std::string> secret;
  TLSTRACE_EVENT("tls.secret", kKeys);
};
// Traffic keys derived from a secret (--log-secrets).
struct TlsKeys {
  std::string direction, epoch, key, iv;
  std::optional<std::string> mac_key;
  TLSTRACE_EVENT("tls.keys", kKeys);
};
// The upstream certificate verdict (tls::trustFields).
struct TlsTrust {
  Report report;
  TLSTRACE_EVENT("tls.trust", kTrust);
};
// Mutual TLS on a leg: what was asked and which client certificate went (tls::clientCertificateFields).
struct TlsClientCertificate {
  Report report;
  TLSTRACE_EVENT("tls.client_certificate", kTrust);
};
// A leg's handshake completed.
struct TlsEstablished {
  std::string version;
  CodeName cipher;
  Nullable<std::string> group, alpn, sni;
  bool resumed = false;
  std::optional<Json> resumption;  // what a resumed handshake took up (analysis::resumptionFacts)
  double handshake_ms = 0;
  std::optional<bool> renegotiation;  // true: a renegotiation on an established leg completed
  TLSTRACE_EVENT("tls.established", kCore);
};
// The key exchange and its assessment (analysis::assessKeyExchange).
struct TlsKeyExchange {
  Report report;
  TLSTRACE_EVENT("tls.key_exchange", kKeyExchange);
};
// The verdict of a safe-prime test that tls.key_exchange left pending (checks.safe_prime
// "pending"): the key exchange's checks, rating and reasons with it.
struct TlsPrimeCheck {
  Report report;
  TLSTRACE_EVENT("tls.prime_check", kKeyExchange);
};
// An alert, sent or received.
struct TlsAlert {
  std::string dir, level, description;
  std::int64_t code = 0;
  TLSTRACE_EVENT("tls.alert", kCore);
};
// A failure on a leg, with its diagnosis.
struct TlsError {
  std::string reason, stage, cause;
  std::optional<std::string> origin;  // "upstream": the root cause is the other leg's
  std::optional<std::string> message, alert, alert_sent, alert_received, verify_error;
  std::optional<std::int64_t> verify_depth;
  std::optional<std::string> raw;  // the first bytes, when they were not TLS
  std::string hint;
  TLSTRACE_EVENT("tls.error", kCore);
};
// One relayed chunk of plaintext.
struct Data {
  bool in = false;
  std::uint64_t bytes = 0;
  HeadBytes head;
  [[nodiscard]] static Data of(bool in, std::span<const std::uint8_t> chunk);
  static constexpr std::string_view kName = "data";
  static constexpr Category kCategory = kData;
  template <class Self, class V>
  static void fields(Self& s, V& v);
};
// A leg's TCP connection closed.
struct TcpClose {
  std::string by, how;
  std::uint64_t bytes_in = 0, bytes_out = 0;
  double duration_ms = 0;
  // An established TLS leg only: whether close_notify came before the peer's FIN (in) and before
  // ours (out). false with a FIN or a reset is a truncated stream (RFC 8446 6.1).
  std::optional<bool> close_notify_in, close_notify_out;
  std::optional<std::string> time_wait;  // --tcp-states, closed with FINs: "proxy" or "peer"
  TLSTRACE_EVENT("tcp.close", kTcp);
};
// Both legs side by side (analysis::buildSummary / completeSummary).
struct ConnSummary {
  Report report;
  TLSTRACE_EVENT("conn.summary", kCore);
};
// The connection is over.
struct ConnClose {
  double duration_ms = 0;
  std::uint64_t bytes_client_to_server = 0, bytes_server_to_client = 0;
  std::string outcome;
  TLSTRACE_EVENT("conn.close", kCore);
};
// A policy rule failed on a leg (--policy, `tlstrace check`).
struct PolicyViolation {
  std::string rule, severity, host, expected, observed, message;
  TLSTRACE_EVENT("policy.violation", kCore);
};
// --audit-clients: what a client did with a broken certificate or offer.
struct AuditResult {
  std::string scenario, client, target, verdict, evidence;
  TLSTRACE_EVENT("audit.result", kCore);
};
// --passthrough, --auto-passthrough: the connection is relayed untouched (the client sees the
// server's own certificate); its plaintext handshake messages are still traced.
struct ConnPassthrough {
  std::string host;  // the name or address matched (SNI, else the target host)
  std::string rule;  // the --passthrough pattern, or "auto"
  TLSTRACE_EVENT("conn.passthrough", kCore);
};
// --auto-passthrough: a client rejected the forged certificate for a host often enough; that host
// is passed through for that client from now on.
struct PassthroughAuto {
  std::string client, host;
  std::uint64_t rejections = 0;
  std::string undo;
  TLSTRACE_EVENT("passthrough.auto", kCore);
};
#undef TLSTRACE_EVENT

// An event this version does not know (read back by `convert` from a newer trace): kept as it was.
struct Other {
  std::string name;
  Json fields = Json::object();
};

// The field lists, in the documented order.
template <class S, class V>
void ConnOpen::fields(S& s, V& v) {
  v("client", s.client);
  v("listen", s.listen);
  v("mode", s.mode);
  v("target", s.target);
}
template <class S, class V>
void ProxyRequest::fields(S& s, V& v) {
  v("method", s.method);
  v("target", s.target);
}
template <class S, class V>
void ProxyError::fields(S& s, V& v) {
  v("status", s.status);
  v("reason", s.reason);
}
template <class S, class V>
void ConnRefused::fields(S& s, V& v) {
  v("client", s.client);
  v("reason", s.reason);
  v("cause", s.cause);
}
template <class S, class V>
void TraceDropped::fields(S& s, V& v) {
  v("output", s.output);
  v("path", s.path);
  v("unit", s.unit);
  v("lost", s.lost);
  v("total", s.total);
  v("error", s.error);
}
template <class S, class V>
void TcpConnect::fields(S& s, V& v) {
  v("peer", s.peer);
  v("local", s.local);
  v("target", s.target);
  v("connect_ms", s.connect_ms);
  v("error", s.error);
  v("via", s.via);
  v("hop", s.hop);
  v("proxy_status", s.proxy_status);
  v("proxy_reply", s.proxy_reply);
  v("tunnel_ms", s.tunnel_ms);
}
template <class S, class V>
void ConnPlaintext::fields(S& s, V& v) {
  v("reason", s.reason);
  v("first_bytes", s.first_bytes);
}
template <class S, class V>
void ConnStartTls::fields(S& s, V& v) {
  v("proto", s.proto);
  v("step", s.step);
  v("text", s.text);
}
template <class S, class V>
void TlsMessage::fields(S& s, V& v) {
  v("dir", s.dir);
  v("type", s.type);
  v("length", s.length);
  v("body", s.body);
  v("fingerprints", s.fingerprints);
}
template <class S, class V>
void TlsMirror::fields(S& s, V& v) {
  v.spread(s.report);
}
template <class S, class V>
void TlsRecord::fields(S& s, V& v) {
  v.direction("dir", s.in);
  v("content_type", s.content_type);
  v.versionName("version", s.version);
  v("length", s.length);
}
template <class S, class V>
void TlsSecret::fields(S& s, V& v) {
  v("label", s.label);
  v("client_random", s.client_random);
  v("secret", s.secret);
}
template <class S, class V>
void TlsKeys::fields(S& s, V& v) {
  v("direction", s.direction);
  v("epoch", s.epoch);
  v("key", s.key);
  v("iv", s.iv);
  v("mac_key", s.mac_key);
}
template <class S, class V>
void TlsTrust::fields(S& s, V& v) {
  v.spread(s.report);
}
template <class S, class V>
void TlsClientCertificate::fields(S& s, V& v) {
  v.spread(s.report);
}
template <class S, class V>
void TlsEstablished::fields(S& s, V& v) {
  v("version", s.version);
  v("cipher", s.cipher);
  v("group", s.group);
  v("alpn", s.alpn);
  v("sni", s.sni);
  v("resumed", s.resumed);
  v("resumption", s.resumption);
  v("handshake_ms", s.handshake_ms);
  v("renegotiation", s.renegotiation);
}
template <class S, class V>
void TlsKeyExchange::fields(S& s, V& v) {
  v.spread(s.report);
}
template <class S, class V>
void TlsPrimeCheck::fields(S& s, V& v) {
  v.spread(s.report);
}
template <class S, class V>
void TlsAlert::fields(S& s, V& v) {
  v("dir", s.dir);
  v("level", s.level);
  v("description", s.description);
  v("code", s.code);
}
template <class S, class V>
void TlsError::fields(S& s, V& v) {
  v("reason", s.reason);
  v("stage", s.stage);
  v("cause", s.cause);
  v("origin", s.origin);
  v("message", s.message);
  v("alert", s.alert);
  v("alert_sent", s.alert_sent);
  v("alert_received", s.alert_received);
  v("verify_error", s.verify_error);
  v("verify_depth", s.verify_depth);
  v("raw", s.raw);
  v("hint", s.hint);
}
template <class S, class V>
void Data::fields(S& s, V& v) {
  v.direction("dir", s.in);
  v("bytes", s.bytes);
  v("hex", s.head);
}
template <class S, class V>
void TcpClose::fields(S& s, V& v) {
  v("by", s.by);
  v("how", s.how);
  v("bytes_in", s.bytes_in);
  v("bytes_out", s.bytes_out);
  v("duration_ms", s.duration_ms);
  v("close_notify_in", s.close_notify_in);
  v("close_notify_out", s.close_notify_out);
  v("time_wait", s.time_wait);
}
template <class S, class V>
void ConnSummary::fields(S& s, V& v) {
  v.spread(s.report);
}
template <class S, class V>
void ConnClose::fields(S& s, V& v) {
  v("duration_ms", s.duration_ms);
  v("bytes_client_to_server", s.bytes_client_to_server);
  v("bytes_server_to_client", s.bytes_server_to_client);
  v("outcome", s.outcome);
}

template <class S, class V>
void PolicyViolation::fields(S& s, V& v) {
  v("rule", s.rule);
  v("severity", s.severity);
  v("host", s.host);
  v("expected", s.expected);
  v("observed", s.observed);
  v("message", s.message);
}

template <class S, class V>
void AuditResult::fields(S& s, V& v) {
  v("scenario", s.scenario);
  v("client", s.client);
  v("target", s.target);
  v("verdict", s.verdict);
  v("evidence", s.evidence);
}

template <class S, class V>
void ConnPassthrough::fields(S& s, V& v) {
  v("host", s.host);
  v("rule", s.rule);
}
template <class S, class V>
void PassthroughAuto::fields(S& s, V& v) {
  v("client", s.client);
  v("host", s.host);
  v("rejections", s.rejections);
  v("undo", s.undo);
}

}  // namespace ev

// Every kind, in the order of docs/events.md; Other last.
// (One kind per line, new ones appended before Other, so that branches adding kinds merge.)
// clang-format off
using Payload = std::variant<
    ev::ConnOpen,
    ev::ProxyRequest,
    ev::ProxyError,
    ev::ConnRefused,
    ev::TcpConnect,
    ev::ConnPlaintext,
    ev::TlsMessage,
    ev::TlsMirror,
    ev::TlsRecord,
    ev::TlsSecret,
    ev::TlsKeys,
    ev::TlsTrust,
    ev::TlsEstablished,
    ev::TlsKeyExchange,
    ev::TlsPrimeCheck,
    ev::TlsAlert,
    ev::TlsError,
    ev::Data,
    ev::TcpClose,
    ev::ConnSummary,
    ev::ConnClose,
    ev::PolicyViolation,
    ev::AuditResult,
    ev::TraceDropped,
    ev::TcpSyn,
    ev::TcpInfo,
    ev::TcpListen,
    ev::TlsClientCertificate,
    ev::ConnStartTls,
    ev::ConnPassthrough,
    ev::PassthroughAuto,
    ev::TcpState,
    ev::TcpSegment,
    ev::Other>;
// clang-format on

}  // namespace tlstrace::trace

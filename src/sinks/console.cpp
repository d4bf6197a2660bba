#include "sinks/console.h"

#include <cstdio>

#include "trace/escape.h"

namespace tlstrace::sinks {

namespace {

using trace::Json;

std::string str(const Json* j) { return j && j->isString() ? std::string(j->asString()) : std::string(); }

// The line's parts that come from events are escaped as the text trace escapes them: a peer's
// SNI, CONNECT target or certificate names may hold anything (ESC, CR/LF, invalid UTF-8).
using trace::escapeText;

// "4.8 kB": bytes as a person reads them (decimal units, like mitmdump).
std::string humanBytes(std::uint64_t n) {
  char buf[32];
  if (n < 1000) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  else if (n < 1000 * 1000) std::snprintf(buf, sizeof buf, "%.1f kB", static_cast<double>(n) / 1e3);
  else if (n < 1000ull * 1000 * 1000) std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(n) / 1e6);
  else std::snprintf(buf, sizeof buf, "%.1f GB", static_cast<double>(n) / 1e9);
  return buf;
}

std::string humanDuration(double ms) {
  char buf[32];
  if (ms < 10) std::snprintf(buf, sizeof buf, "%.1f ms", ms);
  else if (ms < 1000) std::snprintf(buf, sizeof buf, "%.0f ms", ms);
  else std::snprintf(buf, sizeof buf, "%.1f s", ms / 1000);
  return buf;
}

// An HTTP error the proxy answered with, as a cause name like tls.error's.
std::string proxyErrorCause(std::int64_t status) {
  switch (status) {
    case 400: return "bad_request";
    case 403: return "refused";
    case 407: return "proxy_auth_required";
    case 502: return "upstream_unreachable";
    case 503: return "refused";
    case 504: return "upstream_timeout";
    default: return "http_" + std::to_string(status);
  }
}

bool isWeak(const std::string& rating) { return rating == "weak" || rating == "broken"; }

void readLeg(const Json* j, ConnectionLines::Leg& l) {
  if (!j || !j->isObject()) return;
  l.version = str(j->find("version"));
  l.have = !l.version.empty();
  if (const Json* c = j->find("cipher"); c && c->isObject()) l.cipher = str(c->find("name"));
  l.group = str(j->find("group"));
  if (l.kex.empty()) l.kex = str(j->find("kex"));
  if (const std::string r = str(j->find("key_exchange_rating")); !r.empty()) l.rating = r;
  const Json* cert = j->find("certificate");
  if (!cert || !cert->isObject()) return;
  const Json* ok = cert->find("verified");
  const Json* match = cert->find("hostname_match");
  if (ok && ok->isBool() && !ok->asBool()) {
    const std::string why = str(cert->find("error"));
    l.certificate = "UNTRUSTED" + (why.empty() ? std::string() : " (" + why + ")");
  } else if (match && match->isBool() && !match->asBool()) {
    l.certificate = "HOSTNAME MISMATCH (" + str(cert->find("hostname")) + ")";
  } else if (ok && ok->asBool()) {
    l.certificate = "verified";
  }
}

// "TLSv1.3 TLS_AES_256_GCM_SHA384 x25519", the group with its size when it is not a named one.
std::string legText(const ConnectionLines::Leg& l) {
  std::string s = l.version + " " + (l.cipher.empty() ? "?" : l.cipher);
  std::string group = l.group.empty() ? l.kex : l.group;
  if ((group.empty() || group == "custom" || group == "DHE") && l.bits > 0)
    group = (l.kex.empty() ? "DH" : l.kex) + " " + std::to_string(l.bits) + "-bit";
  if (!group.empty()) s += " " + group;
  return s;
}

std::string ratingText(const ConnectionLines::Leg& l) {
  std::string r = isWeak(l.rating) ? (l.rating == "weak" ? "WEAK" : "BROKEN") : l.rating;
  if (isWeak(l.rating) && !l.reason.empty()) r += " (" + l.reason + ")";
  return r;
}

// "kex strong", or per leg when they differ: "kex client strong, upstream WEAK (…)".
std::string kexText(const ConnectionLines::Leg legs[2]) {
  const auto& c = legs[0];
  const auto& u = legs[1];
  if (c.rating.empty() && u.rating.empty()) return {};
  if (c.rating == u.rating && c.reason == u.reason) return "kex " + ratingText(c);
  std::string s = "kex";
  if (!c.rating.empty()) s += " client " + ratingText(c);
  if (!u.rating.empty()) s += std::string(c.rating.empty() ? "" : ",") + " upstream " + ratingText(u);
  return s;
}

// The commonest newcomer failure gets a line of its own making: which file to trust, and how.
std::string rejectedCertificateHint(const std::string& alert, const std::string& ca) {
  return "the client rejected the forged certificate" + (alert.empty() ? std::string() : " (alert " + alert + ")") +
         ": make it trust the CA " + ca + " (curl --cacert " + ca + "; Python SSL_CERT_FILE=" + ca +
         "; Node NODE_EXTRA_CA_CERTS=" + ca + "; Java keytool -importcert -file " + ca +
         "); a client that pins certificates cannot be intercepted";
}

}  // namespace

std::string auditLine(const trace::Event& e) {
  const auto* a = e.as<trace::ev::AuditResult>();
  if (!a) return {};
  char stamp[trace::kTimestampLength];
  trace::writeTimestamp(e.ts, stamp);
  return std::string(stamp + 11, 12) + " #" + std::to_string(e.conn) + " AUDIT " + a->scenario + ": " + a->client +
         (a->verdict == "accepted" ? " ACCEPTED it" : " refused it") + " (" + escapeText(a->target) +
         "): " + escapeText(a->evidence);
}

std::string violationLine(const trace::Event& e) {
  const auto* v = e.as<trace::ev::PolicyViolation>();
  if (!v) return {};
  char stamp[trace::kTimestampLength];
  trace::writeTimestamp(e.ts, stamp);
  return std::string(stamp + 11, 12) + " #" + std::to_string(e.conn) + " POLICY " + v->severity + " " + v->rule + " (" +
         std::string(trace::legName(e.leg)) + (v->host.empty() ? "" : " " + escapeText(v->host)) +
         "): " + escapeText(v->message);
}

std::string passthroughLine(const trace::Event& e) {
  const auto* a = e.as<trace::ev::PassthroughAuto>();
  if (!a) return {};
  char stamp[trace::kTimestampLength];
  trace::writeTimestamp(e.ts, stamp);
  return std::string(stamp + 11, 12) + " #" + std::to_string(e.conn) + " PASSTHROUGH " + escapeText(a->host) + " for " +
         a->client + " from now on: it rejected the forged certificate " + std::to_string(a->rejections) + " times; " +
         escapeText(a->undo);
}

void ConnectionLines::add(const trace::Event& e, std::string& out) {
  if (addLine(e, out)) return;
  if (const auto* o = e.as<trace::ev::ConnOpen>()) {
    Open& c = open_[e.conn];
    c.client = o->client;
    if (o->target) c.target = *o->target;
    return;
  }
  auto it = open_.find(e.conn);
  if (it == open_.end()) return;  // a connection opened before this sink saw events: no line
  note(e, it->second);
}

// The events that write a line: a connection's end (or its refusal at accept), and the ones shown
// at once. False for the others.
bool ConnectionLines::addLine(const trace::Event& e, std::string& out) {
  using namespace trace::ev;
  if (const auto* cl = e.as<ConnClose>()) {
    auto it = open_.find(e.conn);
    Conn c;
    if (it != open_.end()) {
      Open& o = it->second;
      if (o.more) c = std::move(*o.more);
      c.client = std::move(o.client);
      c.target = o.target.empty() && o.more ? "?" : std::move(o.target);  // "?": a summary came without a target
      for (int i = 0; i < 2; ++i) {
        c.legs[i].bits = o.bits[i];
        c.legs[i].reason = std::move(o.reason[i]);
      }
      open_.erase(it);
    }
    c.detail = cl->outcome;
    finish(e, c, out);
    return true;
  }
  if (const auto* r = e.as<ConnRefused>(); r && !open_.contains(e.conn)) {  // at accept: no conn.close follows
    Conn c;
    c.client = r->client;
    c.cause = "refused";
    c.detail = r->reason;
    finish(e, c, out);
    return true;
  }
  if (e.as<PassthroughAuto>()) {
    out += passthroughLine(e);
    out.push_back('\n');
    return true;
  }
  if (e.as<AuditResult>()) {
    out += auditLine(e);
    out.push_back('\n');
    return true;
  }
  if (const auto* v = e.as<PolicyViolation>()) {  // at once: a CI log shows it next to what caused it
    out += violationLine(e);
    out.push_back('\n');
    ++totals_.policy_violations;
    ++totals_.violated_rules[v->rule];
    return true;
  }
  return false;
}

// What an open connection's line will say: its target, its cause, each leg's key exchange.
void ConnectionLines::note(const trace::Event& e, Open& o) {
  using namespace trace::ev;
  if (const auto* q = e.as<ProxyRequest>()) {
    o.target = q->target;
  } else if (const auto* pe = e.as<ProxyError>()) {
    Conn& c = o.conn();
    if (c.cause.empty()) c.cause = proxyErrorCause(pe->status);
  } else if (const auto* rf = e.as<ConnRefused>(); rf && rf->cause) {  // SOCKS5: refused in its own words
    Conn& c = o.conn();
    if (c.cause.empty()) c.cause = *rf->cause;
  } else if (const auto* err = e.as<TlsError>()) {
    // The first error is the root one: an upstream failure comes before the client-leg error it causes.
    Conn& c = o.conn();
    if (c.cause.empty()) {
      c.cause = err->cause;
      c.hint = err->hint;
      c.error_from_other_leg = err->origin.has_value();
      if (err->alert_received) c.alert_received = *err->alert_received;
    }
  } else if (e.as<TlsKeyExchange>() || e.as<TlsPrimeCheck>()) {
    // A tls.prime_check's reasons replace the pending ones of its tls.key_exchange.
    const int leg = e.leg == trace::Leg::Upstream ? 1 : 0;
    const Json& r =
        e.as<TlsKeyExchange>() ? e.as<TlsKeyExchange>()->report.object : e.as<TlsPrimeCheck>()->report.object;
    if (const Json* b = r.find("bits"); b && b->isInt()) o.bits[leg] = b->asInt();
    if (const Json* why = r.find("reasons"); why && why->isArray() && why->asArray().size() > 0)
      o.reason[leg] = std::string((*why->asArray().begin()).asString());
  } else if (const auto* s = e.as<ConnSummary>()) {  // the kex names come from here
    Conn& c = o.conn();
    const Json& r = s->report.object;
    readLeg(r.find("client"), c.legs[0]);
    readLeg(r.find("upstream"), c.legs[1]);
    if (const Json* cl = r.find("client"); cl && cl->isObject()) c.sni = str(cl->find("sni"));
    c.legs[0].certificate.clear();  // the client leg's certificate is our own forged one
  }
}

void ConnectionLines::finish(const trace::Event& e, Conn& c, std::string& out) {
  char stamp[trace::kTimestampLength];
  trace::writeTimestamp(e.ts, stamp);
  out.append(stamp + 11, 12);  // HH:MM:SS.mmm (UTC, as the trace)
  out += " #" + std::to_string(e.conn) + " " + (c.client.empty() ? "?" : escapeText(c.client)) + " -> " +
         (c.target.empty() ? "?" : escapeText(c.target));
  if (!c.sni.empty()) out += " sni " + escapeText(c.sni);
  const auto* close = e.as<trace::ev::ConnClose>();
  const bool ok = close && close->outcome == "ok" && c.cause.empty();
  if (c.legs[0].have || c.legs[1].have) {
    for (int i = 0; i < 2; ++i)
      out += std::string(i == 0 ? " | client " : " | upstream ") +
             (c.legs[i].have ? legText(c.legs[i]) : "not established");
    if (const std::string k = kexText(c.legs); !k.empty()) out += " | " + k;
  }
  // Also when the upstream handshake failed on it: the verdict is the reason then.
  if (!c.legs[1].certificate.empty()) out += " | cert " + escapeText(c.legs[1].certificate);
  std::string cause = c.cause;
  // No diagnosis on record (no tls.error, no HTTP error): the connection ended before TLS began.
  if (!ok && cause.empty()) cause = c.detail.find("closed") != std::string::npos ? "closed_early" : "other";
  out += ok ? " | ok" : " | FAILED " + escapeText(cause);
  if (close)
    out += " | " + humanBytes(close->bytes_client_to_server) + " up, " + humanBytes(close->bytes_server_to_client) +
           " down | " + humanDuration(close->duration_ms);
  if (!ok) {
    if (cause == "client_rejected_certificate") out += " | " + rejectedCertificateHint(c.alert_received, ca_path_);
    else {
      if (!c.detail.empty()) out += " | " + escapeText(c.detail);
      if (!c.hint.empty() && !c.error_from_other_leg) out += " | hint: " + escapeText(c.hint);
    }
  }
  out.push_back('\n');

  ++totals_.connections;
  if (ok) ++totals_.ok;
  else {
    ++totals_.failed;
    ++totals_.failures[cause];
  }
  const bool weak = isWeak(c.legs[0].rating) || isWeak(c.legs[1].rating);
  if (weak) {
    ++totals_.weak;
    if (totals_.weak_examples.size() < 5)
      totals_.weak_examples.push_back("#" + std::to_string(e.conn) + " " + escapeText(c.target) + ": " +
                                      escapeText(kexText(c.legs)));
  }
}

void ConsoleSink::write(const trace::Event& e) {
  const std::lock_guard<std::mutex> lock(mu_);
  std::string& buf = out_.buffer();
  lines_.add(e, buf);
  out_.spillIfFull();
}

ConsoleTotals ConsoleSink::totals() const {
  const std::lock_guard<std::mutex> lock(mu_);
  return lines_.totals();
}

std::string renderExitSummary(const ConsoleTotals& t, const std::vector<std::pair<std::string, std::string>>& outputs) {
  std::string s = std::to_string(t.connections) + (t.connections == 1 ? " connection" : " connections") + ": " +
                  std::to_string(t.ok) + " ok, " + std::to_string(t.failed) + " failed\n";
  if (!t.failures.empty()) {
    s += "failures:";
    bool first = true;
    for (const auto& [cause, n] : t.failures) {
      s += std::string(first ? " " : ", ") + cause + " " + std::to_string(n);
      first = false;
    }
    s += "\n";
  }
  s += "weak key exchanges: " + std::to_string(t.weak) + "\n";
  for (const auto& w : t.weak_examples) s += "  " + w + "\n";
  if (t.weak > t.weak_examples.size())
    s += "  (and " + std::to_string(t.weak - t.weak_examples.size()) + " more: see the trace)\n";
  if (t.policy_violations > 0) {
    s += "policy violations: " + std::to_string(t.policy_violations) + " (";
    bool first = true;
    for (const auto& [rule, n] : t.violated_rules) {
      s += std::string(first ? "" : ", ") + rule + " " + std::to_string(n);
      first = false;
    }
    s += ")\n";
  }
  for (const auto& [what, path] : outputs) s += what + ": " + path + "\n";
  return s;
}

}  // namespace tlstrace::sinks

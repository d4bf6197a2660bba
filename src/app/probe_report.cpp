// The probe's report (docs/probe.md), read back from the events of its handshakes: the same
// values the trace shows, gathered into one object, and its text form.
#include <string>
#include <vector>

#include "app/probe_run.h"
#include "session/probe.h"
#include "tls/session_info.h"

namespace tlstrace::app {

using trace::Json;

namespace {

std::string str(const Json* j) { return j && j->isString() ? std::string(j->asString()) : std::string(); }

const Json* upstreamEvent(const std::vector<Json>& evs, std::string_view kind) {
  for (const Json& e : evs)
    if (str(e.find("event")) == kind && str(e.find("leg")) == "upstream") return &e;
  return nullptr;
}

Json fieldsOf(const Json* e) {
  if (!e) return Json();
  Json out = Json::object();
  for (const auto& [k, v] : e->asObject())
    if (k != "ts" && k != "conn" && k != "leg" && k != "event") out.set(k, Json(v));
  return out;
}

Json copyOr(const Json* j) { return j ? *j : Json(); }

// The resumption attempt: what the first handshake left, what the second made of it.
Json resumption(const std::vector<Json>* second, const tls::SavedSession& saved) {
  Json r = Json::object();
  r.set("session", saved.hasTicket() ? Json("ticket") : saved.saved() ? Json("session_id") : Json());
  const long life = saved.ticketLifetime();
  r.set("ticket_lifetime_s", life >= 0 ? Json(life) : Json());
  r.set("attempted", second != nullptr);
  const Json* est = second ? upstreamEvent(*second, "tls.established") : nullptr;
  r.set("resumed", est && est->find("resumed") && est->find("resumed")->asBool());
  if (est) r.set("version", copyOr(est->find("version")));
  if (const Json* err = second ? upstreamEvent(*second, "tls.error") : nullptr)
    r.set("error", copyOr(err->find("cause")));
  return r;
}

}  // namespace

Json probeReport(const std::string& target, const session::ProbeSpec& spec, const std::vector<Json>& first,
                 const std::vector<Json>* second, const tls::SavedSession& saved) {
  Json r = Json::object();
  r.set("target", target);
  r.set("sni", spec.sni.empty() ? Json() : Json(spec.sni));
  Json alpn = Json::array();
  for (const auto& p : spec.alpn) alpn.push(p);
  r.set("alpn_offered", std::move(alpn));
  const Json* connect = upstreamEvent(first, "tcp.connect");
  const Json* est = upstreamEvent(first, "tls.established");
  const Json* err = upstreamEvent(first, "tls.error");
  r.set("ok", est != nullptr);
  r.set("address", connect ? copyOr(connect->find("peer")) : Json());
  if (!est) {
    Json e = Json::object();
    if (err) {
      e.set("cause", copyOr(err->find("cause")));
      e.set("reason", copyOr(err->find("reason")));
      e.set("hint", copyOr(err->find("hint")));
    } else if (connect && connect->find("error")) {
      e.set("cause", "upstream_unreachable");
      e.set("reason", copyOr(connect->find("error")));
    } else {
      e.set("cause", "unknown");
    }
    r.set("error", std::move(e));
  } else {
    r.set("error", Json());
  }
  r.set("version", est ? copyOr(est->find("version")) : Json());
  r.set("cipher", est ? copyOr(est->find("cipher")) : Json());
  r.set("group", est ? copyOr(est->find("group")) : Json());
  r.set("alpn", est ? copyOr(est->find("alpn")) : Json());
  r.set("handshake_ms", est ? copyOr(est->find("handshake_ms")) : Json());
  r.set("key_exchange", fieldsOf(upstreamEvent(first, "tls.key_exchange")));
  r.set("trust", fieldsOf(upstreamEvent(first, "tls.trust")));
  r.set("resumption", est ? resumption(second, saved) : Json());
  return r;
}

Json policyReport(const analysis::PolicyEngine& engine, const std::string& file) {
  Json p = Json::object();
  p.set("file", file);
  p.set("violations", static_cast<long long>(engine.violations()));
  Json cases = Json::array();
  for (const analysis::PolicyCase* c : engine.cases()) {
    Json one = Json::object();
    one.set("rule", c->rule);
    one.set("host", c->host);
    one.set("passed", c->failures.empty());
    if (!c->failures.empty()) {  // the first failure stands for the case (the JUnit file has them all)
      one.set("expected", c->failures.front().expected);
      one.set("observed", c->failures.front().observed);
    }
    cases.push(std::move(one));
  }
  p.set("rules", std::move(cases));
  return p;
}

namespace {

std::string text(const Json* j) {
  if (!j || j->isNull()) return "-";
  if (j->isString()) return std::string(j->asString());
  return j->dump();
}

void line(std::string& out, const char* label, const std::string& value) {
  out += "  ";
  out += label;
  out.append(16 - std::min<std::size_t>(15, std::char_traits<char>::length(label)), ' ');
  out += value;
  out += '\n';
}

std::string list(const Json* a) {
  if (!a || !a->isArray() || a->asArray().size() == 0) return "none";
  std::string s;
  for (const auto& v : a->asArray()) s += (s.empty() ? "" : ", ") + text(&v);
  return s;
}

void renderTrust(std::string& out, const Json& t) {
  if (!t.isObject()) return;
  std::string v = t.find("verified") && t.find("verified")->asBool() ? "verified" : "NOT verified";
  if (const Json* e = t.find("error"); e && e->isString()) v += " (" + text(e) + ")";
  if (const Json* m = t.find("hostname_match")) v += m->asBool() ? ", hostname matches" : ", hostname does NOT match";
  line(out, "certificate", v);
  if (const Json* chain = t.find("chain"); chain && chain->isArray()) {
    int depth = 0;
    for (const auto& c : chain->asArray()) {
      const Json& cert = c;
      std::string key;
      if (const Json* k = cert.find("key")) key = text(k->find("type")) + " " + text(k->find("bits"));
      line(out, "",
           std::to_string(depth++) + " " + text(cert.find("subject")) + " (issuer " + text(cert.find("issuer")) +
               ", until " + text(cert.find("not_after")) + ", " + key + ", " + text(cert.find("signature_algorithm")) +
               ")");
    }
  }
}

void renderScan(std::string& out, const Json& s) {
  out += "scan (" + text(s.find("handshakes")) + " handshakes, " + text(s.find("seconds")) + " s)\n";
  line(out, "versions", list(s.find("versions")));
  if (const Json* c = s.find("ciphers"); c && c->isObject())
    for (const auto& [version, suites] : c->asObject())
      line(out, ("ciphers " + std::string(version)).c_str(), list(&suites));
  if (const Json* g = s.find("groups"); g && g->isObject()) {
    line(out, "groups", list(g->find("accepted")) + " (at " + text(g->find("version")) + ")");
    if (const Json* h = g->find("hrr"); h && h->isObject())
      line(out, "hrr", "key share for " + text(h->find("key_share")) + " only: " + text(h->find("result")));
  }
  if (const Json* d = s.find("dhe"); d && d->isObject())
    line(out, "dhe", text(d->find("group")) + " " + text(d->find("bits")) + " bits: " + text(d->find("rating")));
  if (const Json* g = s.find("sigalgs"); g && g->isObject())
    line(out, "sigalgs", list(g->find("accepted")) + " (at " + text(g->find("version")) + ")");
}

}  // namespace

std::string renderProbeReport(const Json& r) {
  std::string out =
      "\nprobe " + text(r.find("target")) + " (" + text(r.find("address")) + ") sni " + text(r.find("sni")) + "\n";
  if (!r.find("ok")->asBool()) {
    const Json* e = r.find("error");
    line(out, "handshake", "FAILED " + text(e->find("cause")) + ": " + text(e->find("reason")));
    if (const Json* h = e->find("hint"); h && h->isString()) line(out, "hint", text(h));
  } else {
    line(out, "handshake", "ok in " + text(r.find("handshake_ms")) + " ms");
    line(out, "version", text(r.find("version")));
    line(out, "cipher", r.find("cipher")->isObject() ? text(r.find("cipher")->find("name")) : "-");
    line(out, "group", text(r.find("group")));
    line(out, "alpn", text(r.find("alpn")));
  }
  if (const Json& k = *r.find("key_exchange"); k.isObject()) {
    std::string v = text(k.find("kex")) + " " + text(k.find("group")) + " " + text(k.find("bits")) +
                    " bits: " + text(k.find("rating"));
    if (const Json* why = k.find("reasons"); why && why->isArray() && why->asArray().size() > 0)
      v += " (" + list(why) + ")";
    line(out, "key exchange", v);
  }
  renderTrust(out, *r.find("trust"));
  if (const Json& res = *r.find("resumption"); res.isObject()) {
    std::string v = "offered " + text(res.find("session"));
    if (const Json* l = res.find("ticket_lifetime_s"); l && !l->isNull()) v += " (lifetime " + text(l) + " s)";
    if (res.find("attempted")->asBool()) v += res.find("resumed")->asBool() ? ", resumed" : ", NOT resumed";
    line(out, "resumption", v);
  }
  if (const Json* s = r.find("scan")) renderScan(out, *s);
  if (const Json* p = r.find("policy")) {
    out += "policy " + text(p->find("file")) + ": " + text(p->find("violations")) + " violation(s)\n";
    for (const auto& c : p->find("rules")->asArray()) {
      const Json& one = c;
      std::string v = one.find("passed")->asBool() ? "held" : "FAILED";
      if (const Json* o = one.find("observed"))
        v += ": observed " + text(o) + ", expected " + text(one.find("expected"));
      line(out, (text(one.find("rule"))).c_str(), v);
    }
  }
  return out;
}

}  // namespace tlstrace::app

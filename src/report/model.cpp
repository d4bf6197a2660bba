#include "report/model.h"

#include <algorithm>
#include <chrono>

namespace tlstrace::report {

using trace::Json;

namespace {

bool isLowerHex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string str(const Json& fields, std::string_view key) {
  const Json* v = fields.find(key);
  return v && v->isString() ? std::string(v->asString()) : std::string();
}

// Events the page does not draw: their values are secrets (tls.secret, tls.keys) or too many to
// be worth their bytes (record headers, relayed chunks; the totals are in tcp.close).
bool dropped(std::string_view name) {
  return name == "tls.secret" || name == "tls.keys" || name == "tls.record" || name == "data";
}

LegFacts& legOf(Connection& c, trace::Leg leg) { return leg == trace::Leg::Upstream ? c.upstream_leg : c.client_leg; }

void setIfEmpty(std::string& to, std::string v) {
  if (to.empty()) to = std::move(v);
}

// conn.summary's per-leg object: the final rating (after a prime check) and the certificate verdict.
void fromSummaryLeg(LegFacts& l, const Json* s) {
  if (!s || !s->isObject()) return;
  if (const Json* r = s->find("key_exchange_rating"); r && r->isString()) l.rating = std::string(r->asString());
  if (const Json* h = s->find("hello_retry_request"); h && h->asBool()) l.hrr = true;
  if (const Json* cert = s->find("certificate"); cert && cert->isObject() && l.cert.empty()) {
    const Json* ok = cert->find("verified");
    l.cert = ok && ok->asBool() ? "verified" : "not verified";
  }
}

void fromTrust(LegFacts& l, const Json& f) {
  const Json* ok = f.find("verified");
  if (ok && ok->asBool()) {
    l.cert = "verified";
    return;
  }
  const Json* match = f.find("hostname_match");
  const std::string err = str(f, "error");
  l.cert = !err.empty() ? "not verified: " + err : match && !match->asBool() ? "hostname mismatch" : "not verified";
}

// The facts one event adds to its connection's overview row.
void note(Connection& c, const trace::Event& e, std::string_view name, const Json& f) {
  LegFacts& l = legOf(c, e.leg);
  if (name == "conn.open") {
    c.client = str(f, "client");
    c.mode = str(f, "mode");
    setIfEmpty(c.target, str(f, "target"));
  } else if (name == "conn.refused") {
    c.client = str(f, "client");
    c.outcome = "refused";
    setIfEmpty(c.cause, str(f, "reason"));
  } else if (name == "proxy.request" || name == "tcp.connect") {
    setIfEmpty(c.target, str(f, "target"));
    if (name == "tcp.connect" && f.find("error")) setIfEmpty(c.cause, "upstream_unreachable");
  } else if (name == "proxy.error") {
    setIfEmpty(c.cause, "HTTP " + std::to_string(f.find("status") ? f.find("status")->asInt() : 0));
  } else if (name == "tls.message") {
    const std::string type = str(f, "type");
    if (type == "HelloRetryRequest") l.hrr = true;
    if (type == "ClientHello" && e.leg == trace::Leg::Client)
      if (const Json* b = f.find("body"); b && c.sni.empty()) c.sni = str(*b, "sni");
  } else if (name == "tls.established") {
    l.established = true;
    l.version = str(f, "version");
    if (const Json* ci = f.find("cipher")) l.cipher = str(*ci, "name");
    setIfEmpty(l.group, str(f, "group"));
    l.alpn = str(f, "alpn");
    l.resumed = f.find("resumed") && f.find("resumed")->asBool();
    if (e.leg == trace::Leg::Client) setIfEmpty(c.sni, str(f, "sni"));
    if (e.leg == trace::Leg::Client && l.cert.empty()) l.cert = "accepted the forged leaf";
  } else if (name == "tls.key_exchange" || name == "tls.prime_check") {
    if (name == "tls.key_exchange") {
      l.kex = str(f, "kex");
      l.group = str(f, "group");
      if (const Json* b = f.find("bits")) l.bits = b->asInt();
    }
    if (const Json* r = f.find("rating"); r && r->isString()) l.rating = std::string(r->asString());
  } else if (name == "tls.trust") {
    fromTrust(l, f);
  } else if (name == "tls.error") {
    setIfEmpty(l.error, str(f, "cause"));
    setIfEmpty(l.hint, str(f, "hint"));
    if (e.leg == trace::Leg::Client && l.error == "client_rejected_certificate") l.cert = "rejected the forged leaf";
    setIfEmpty(c.cause, str(f, "cause"));
  } else if (name == "tcp.close") {
    l.closed = true;
    if (const Json* v = f.find("bytes_in")) l.bytes_in = v->asUint();
    if (const Json* v = f.find("bytes_out")) l.bytes_out = v->asUint();
  } else if (name == "conn.summary") {
    fromSummaryLeg(c.client_leg, f.find("client"));
    fromSummaryLeg(c.upstream_leg, f.find("upstream"));
  } else if (name == "conn.close") {
    c.closed = true;
    if (const Json* v = f.find("duration_ms")) c.duration_ms = v->asDouble();
    if (const Json* v = f.find("bytes_client_to_server")) c.up = v->asInt();
    if (const Json* v = f.find("bytes_server_to_client")) c.down = v->asInt();
    c.outcome = str(f, "outcome");
  } else if (name == "policy.violation") {
    ++c.policy_violations;
  } else if (name == "audit.result") {
    c.audit = str(f, "scenario") + ": " + str(f, "verdict");
  }
}

void put(Json& o, std::string_view key, const std::string& v) {
  if (!v.empty()) o.set(key, Json(v));
}

Json legJson(const LegFacts& l) {
  Json o = Json::object();
  put(o, "v", l.version);
  put(o, "c", l.cipher);
  put(o, "g", l.group);
  put(o, "k", l.kex);
  if (l.bits > 0) o.set("b", Json(l.bits));
  put(o, "r", l.rating);
  put(o, "a", l.alpn);
  put(o, "ce", l.cert);
  put(o, "er", l.error);
  put(o, "h", l.hint);
  if (l.established) o.set("est", Json(true));
  if (l.resumed) o.set("res", Json(true));
  if (l.hrr) o.set("hrr", Json(true));
  if (l.closed) {
    o.set("bi", Json(l.bytes_in));
    o.set("bo", Json(l.bytes_out));
  }
  return o;
}

// A connection's overview row (the table's cells), in the order the page has always had them.
Json rowJson(const Connection& c) {
  Json o = Json::object();
  o.set("id", Json(c.id));
  if (c.file > 0) o.set("f", Json(c.file));
  o.set("t", Json(c.time));
  put(o, "cl", c.client);
  put(o, "m", c.mode);
  put(o, "tg", c.target);
  put(o, "sni", c.sni);
  put(o, "o", c.closed || !c.outcome.empty() ? (c.outcome.empty() ? "closed" : c.outcome) : "open");
  put(o, "ca", c.cause);
  if (c.duration_ms >= 0) o.set("d", Json(c.duration_ms));
  if (c.up >= 0) o.set("up", Json(c.up));
  if (c.down >= 0) o.set("dn", Json(c.down));
  if (c.policy_violations > 0) o.set("pv", Json(c.policy_violations));
  put(o, "au", c.audit);
  Json legs = Json::array();
  legs.push(legJson(c.client_leg));
  legs.push(legJson(c.upstream_leg));
  o.set("L", std::move(legs));
  return o;
}

}  // namespace

Json compact(const Json& v) {
  Json out = v;
  compactInPlace(out);
  return out;
}

void compactInPlace(Json& v) {
  boost::json::value& b = v.value();
  if (b.is_array()) {
    for (boost::json::value& item : b.get_array()) compactInPlace(Json::of(item));
  } else if (b.is_object()) {
    for (auto& member : b.get_object()) compactInPlace(Json::of(member.value()));
  } else if (const std::string_view s = v.asString(); s.size() > kHexMax && isLowerHex(s)) {
    std::string cut = std::string(s.substr(0, kHexKept)) + "\u2026 (" + std::to_string(s.size() / 2) + " bytes)";
    v = Json(cut);
  }
}

Json Pool::intern(const Json& v) {
  Json out;
  if (v.isArray()) {
    out = Json::array();
    for (const Json& item : v.asArray()) out.push(intern(item));
  } else if (v.isObject()) {
    out = Json::object();
    for (const auto& [k, item] : v.asObject()) out.set(k, intern(item));
  } else {
    return v;
  }
  // Children are references already, so this text is the node's own size, not its subtree's.
  std::string text = out.dump();
  if (text.size() < kPoolMin) return out;
  auto it = index_.find(text);
  if (it == index_.end()) {
    it = index_.emplace(std::move(text), items_.asArray().size()).first;
    items_.push(std::move(out));
  }
  Json ref = Json::object();
  ref.set("@", Json(it->second));
  return ref;
}

Json Pool::take() {
  index_.clear();
  return std::exchange(items_, Json::array());
}

const Connection* Model::find(std::uint64_t id, std::uint32_t file) const {
  const auto it = conns_.find(Key{file, id});
  return it == conns_.end() ? nullptr : &it->second;
}

Connection& Model::connection(const trace::Event& e, std::uint32_t file) {
  auto [it, fresh] = conns_.try_emplace(Key{file, e.conn});
  if (fresh) {
    it->second.id = e.conn;
    it->second.file = file;
    it->second.t0 = e.ts;
    it->second.time = trace::formatTimestamp(e.ts);
    order_.push_back(Key{file, e.conn});
  }
  return it->second;
}

bool Model::add(const trace::Event& e, std::uint32_t file) {
  const std::string_view name = e.name();
  Json scratch;
  if (e.conn == 0) {  // process-wide: trace.dropped
    notes_.push_back(std::string(name) + ": " + trace::fieldsOf(e, scratch).dump());
    return false;
  }
  if (keep_ > 0 && e.conn <= evicted_below_ && !conns_.contains(Key{file, e.conn})) return false;
  Connection& c = connection(e, file);
  bool changed = false;
  if (!dropped(name)) {  // (note() reads nothing from the events left out)
    const Json& f = trace::fieldsOf(e, scratch);
    note(c, e, name, f);
    const auto dt = std::chrono::duration_cast<std::chrono::microseconds>(e.ts - c.t0).count();
    // The fields once: built for this event (scratch) they are taken as they are, not copied.
    Json fields = &f == &scratch ? std::move(scratch) : f;
    compactInPlace(fields);
    Json ev = Json::array();
    ev.push(Json(static_cast<long long>(dt)));
    ev.push(Json(e.leg == trace::Leg::Client ? 1 : e.leg == trace::Leg::Upstream ? 2 : 0));
    ev.push(Json(name));
    ev.push(std::move(fields));
    c.events.push_back(std::move(ev));
    changed = true;
  }
  while (keep_ > 0 && order_.size() > keep_) {
    evicted_below_ = std::max(evicted_below_, order_.front().second);
    conns_.erase(order_.front());
    order_.pop_front();
    ++evicted_;
  }
  return changed;
}

Json Model::connectionJson(const Connection& c, Pool& pool) {
  Json o = rowJson(c);
  Json evs = Json::array();
  for (const Json& ev : c.events) {
    Json item = Json::array();
    const auto& a = ev.asArray();
    item.push(a[0]);
    item.push(a[1]);
    item.push(a[2]);
    item.push(pool.intern(a[3]));
    evs.push(std::move(item));
  }
  o.set("e", std::move(evs));
  return o;
}

Json Model::summaryJson(const Connection& c) {
  Json o = rowJson(c);
  o.set("n", Json(c.events.size()));
  return o;
}

Json Model::updateJson(const Connection& c) {
  Pool pool;
  Json conns = Json::array();
  conns.push(connectionJson(c, pool));
  Json o = Json::object();
  o.set("conns", std::move(conns));
  o.set("pool", pool.take());
  return o;
}

Json Model::toJson(Detail detail) const {
  Pool pool;
  Json conns = Json::array();
  for (const Key& k : order_) {
    const Connection& c = conns_.at(k);
    conns.push(detail == Detail::Full ? connectionJson(c, pool) : summaryJson(c));
  }
  Json o = Json::object();
  o.set("v", Json(1));
  o.set("conns", std::move(conns));
  o.set("pool", pool.take());
  Json notes = Json::array();
  for (const auto& n : notes_) notes.push(Json(n));
  o.set("notes", std::move(notes));
  if (evicted_ > 0) o.set("evicted", Json(evicted_));
  return o;
}

}  // namespace tlstrace::report

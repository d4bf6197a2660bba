#include "trace/event.h"

#include <cstdio>
#include <ctime>

namespace tlstrace::trace {

std::string_view legName(Leg leg) {
  switch (leg) {
    case Leg::Client: return "client";
    case Leg::Upstream: return "upstream";
    case Leg::None: break;
  }
  return "";
}

bool parseCategories(std::string_view list, unsigned& out, std::string& bad) {
  out = 0;
  while (!list.empty()) {
    auto comma = list.find(',');
    std::string_view tok = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    if (tok.empty()) continue;
    if (tok == "tcp") out |= kTcp;
    else if (tok == "handshake") out |= kHandshake;
    else if (tok == "keyexchange") out |= kKeyExchange;
    else if (tok == "trust") out |= kTrust;
    else if (tok == "keys") out |= kKeys;
    else if (tok == "record") out |= kRecord;
    else if (tok == "data") out |= kData;
    else if (tok == "all") out |= kAll;
    else {
      bad = std::string(tok);
      return false;
    }
  }
  return true;
}

Category categoryOf(std::string_view n) {
  if (n == "tcp.connect" || n == "tcp.close") return kTcp;
  if (n == "tls.message" || n == "tls.mirror") return kHandshake;
  if (n == "tls.key_exchange") return kKeyExchange;
  if (n == "tls.trust") return kTrust;
  if (n == "tls.secret" || n == "tls.keys") return kKeys;
  if (n == "tls.record") return kRecord;
  if (n == "data") return kData;
  return kCore;
}

std::string formatTimestamp(Clock::time_point tp) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(tp.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(us % 1000000));
  return buf;
}

Json toJson(const Event& e) {
  Json j = Json::object();
  j.set("ts", formatTimestamp(e.ts));
  j.set("conn", e.conn);
  if (e.leg != Leg::None) j.set("leg", legName(e.leg));
  j.set("event", e.name);
  for (const auto& [k, v] : e.fields.asObject()) j.set(k, v);
  return j;
}

void appendJsonLine(const Event& e, std::string& out) {
  // Same bytes as toJson(e).dump(): the common fields, then the event's own, in order.
  Json head = Json::object();
  head.set("ts", formatTimestamp(e.ts));
  head.set("conn", e.conn);
  if (e.leg != Leg::None) head.set("leg", legName(e.leg));
  head.set("event", e.name);
  std::string h = head.dump();
  h.pop_back();  // the closing brace
  out += h;
  std::string rest = e.fields.dump();  // "{...}"
  if (rest.size() > 2) {
    out.push_back(',');
    out.append(rest, 1, std::string::npos);
  } else {
    out.push_back('}');
  }
}

namespace {
bool parseTimestamp(const std::string& s, Clock::time_point& out) {
  std::tm tm{};
  int year = 0, mon = 0, usec = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%6dZ", &year, &mon, &tm.tm_mday, &tm.tm_hour,
                  &tm.tm_min, &tm.tm_sec, &usec) != 7)
    return false;
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  const std::time_t t = timegm(&tm);
  out = Clock::time_point(std::chrono::seconds(t)) + std::chrono::microseconds(usec);
  return true;
}
}  // namespace

bool fromJson(const Json& j, Event& out) {
  const Json* ts = j.find("ts");
  const Json* conn = j.find("conn");
  const Json* ev = j.find("event");
  if (!ts || !conn || !ev || !ts->isString() || !conn->isInt() || !ev->isString()) return false;
  if (!parseTimestamp(ts->asString(), out.ts)) return false;
  out.conn = static_cast<std::uint64_t>(conn->asInt());
  out.name = ev->asString();
  out.leg = Leg::None;
  if (const Json* leg = j.find("leg")) {
    if (leg->asString() == "client") out.leg = Leg::Client;
    else if (leg->asString() == "upstream") out.leg = Leg::Upstream;
  }
  out.fields = Json::object();
  for (const auto& [k, v] : j.asObject()) {
    if (k == "ts" || k == "conn" || k == "leg" || k == "event") continue;
    out.fields.set(k, v);
  }
  return true;
}

void Tracer::emit(const Event& e) {
  if (!enabled(categoryOf(e.name))) return;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& s : sinks_) s->write(e);
}

void Tracer::flush() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& s : sinks_) s->flush();
}

}  // namespace tlstrace::trace

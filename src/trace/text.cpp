#include "trace/text.h"

#include <cstdio>

namespace tlstrace::trace {

namespace {

constexpr std::size_t kInlineWidth = 96;

bool isCodeName(const Json& j) {
  const auto& o = j.asObject();
  return j.isObject() && o.size() == 2 && o[0].first == "id" && o[1].first == "name";
}

std::string scalar(const Json& j) {
  if (j.isString()) return j.asString();
  if (isCodeName(j)) {
    char buf[16];
    std::snprintf(buf, sizeof buf, " (0x%04llx)", static_cast<unsigned long long>(j.find("id")->asInt()));
    return j.find("name")->asString() + buf;
  }
  return j.dump();
}

bool isFlat(const Json& j) { return !(j.isArray() || j.isObject()) || isCodeName(j); }

// One-line form of an array of flat items, or of a small flat object; empty when it does not fit.
std::string inlineForm(const Json& j) {
  std::string s;
  if (j.isArray()) {
    for (const auto& x : j.asArray()) {
      if (!isFlat(x)) return {};
      if (!s.empty()) s += ", ";
      s += scalar(x);
    }
    s = "[" + s + "]";
  } else if (j.isObject()) {
    for (const auto& [k, v] : j.asObject()) {
      if (!isFlat(v)) return {};
      if (!s.empty()) s += ", ";
      s += k + "=" + scalar(v);
    }
    s = "{" + s + "}";
  } else {
    s = scalar(j);
  }
  return s.size() <= kInlineWidth ? s : std::string{};
}

void renderValue(const std::string& prefix, int indent, const std::string& key, const Json& v,
                 std::string& out) {
  const std::string pad(static_cast<std::size_t>(indent) * 2, ' ');
  if (isFlat(v)) {
    out += prefix + pad + key + ": " + scalar(v) + "\n";
    return;
  }
  if (auto s = inlineForm(v); !s.empty()) {
    out += prefix + pad + key + ": " + s + "\n";
    return;
  }
  if (v.isArray()) {
    out += prefix + pad + key + ": (" + std::to_string(v.asArray().size()) + ")\n";
    std::size_t i = 0;
    for (const auto& x : v.asArray()) renderValue(prefix, indent + 1, "[" + std::to_string(i++) + "]", x, out);
    return;
  }
  out += prefix + pad + key + ":\n";
  for (const auto& [k, x] : v.asObject()) renderValue(prefix, indent + 1, k, x, out);
}

std::string str(const Json& f, std::string_view key) {
  const Json* v = f.find(key);
  return v ? scalar(*v) : std::string{};
}

}  // namespace

std::string renderText(const Event& e) {
  const std::string ts = formatTimestamp(e.ts);
  char head[96];
  std::snprintf(head, sizeof head, "%s #%llu %-8s ", ts.substr(11, 15).c_str(),
                static_cast<unsigned long long>(e.conn),
                e.leg == Leg::None ? "-" : std::string(legName(e.leg)).c_str());
  const std::string prefix = head;
  const Json& f = e.fields;
  std::string out;
  std::string skip1, skip2, skip3;  // fields already shown in the headline
  if (e.name == "tls.message") {
    const bool in = str(f, "dir") == "in";
    out = prefix + (in ? "<- " : "-> ") + str(f, "type") + " (" + str(f, "length") + " bytes)\n";
    skip1 = "dir", skip2 = "type", skip3 = "length";
  } else if (e.name == "tls.alert") {
    const bool in = str(f, "dir") == "in";
    out = prefix + (in ? "<- " : "-> ") + "Alert " + str(f, "level") + " " + str(f, "description") + "\n";
    skip1 = "dir", skip2 = "level", skip3 = "description";
  } else {
    out = prefix + "== " + e.name + "\n";
  }
  for (const auto& [k, v] : f.asObject()) {
    if (k == skip1 || k == skip2 || k == skip3) continue;
    if (k == "body") {
      for (const auto& [bk, bv] : v.asObject()) renderValue(prefix, 2, bk, bv, out);
      continue;
    }
    renderValue(prefix, 2, k, v, out);
  }
  return out;
}

}  // namespace tlstrace::trace

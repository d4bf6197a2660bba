#include "config/policy.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <set>

#include "config/config_file.h"

namespace tlstrace::config {

namespace {

std::string at(const std::string& file, const toml::source_position& p) {
  return file + ":" + std::to_string(p.line) + ":" + std::to_string(p.column);
}

// One rule key: the type it takes and where its value goes.
struct KeySpec {
  std::string_view name;
  toml::node_type type;                                              // for arrays: of strings
  std::function<std::string(PolicyRule&, const toml::node&)> apply;  // "" or what is wrong with the value
};

std::string typeName(toml::node_type t) {
  switch (t) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number";
    case toml::node_type::boolean: return "true or false";
    case toml::node_type::array: return "an array of strings";
    case toml::node_type::table: return "a table";
    default: return "a date or time";
  }
}

std::string str(const toml::node& n) { return n.as_string() ? n.as_string()->get() : std::string(); }

std::vector<std::string> strings(const toml::node& n) {
  std::vector<std::string> out;
  if (const auto* a = n.as_array())
    for (const auto& e : *a) out.push_back(str(e));
  return out;
}

template <class T>
std::function<std::string(PolicyRule&, const toml::node&)> boolKey(std::optional<T> PolicyRule::*m) {
  return [m](PolicyRule& r, const toml::node& n) {
    r.*m = n.as_boolean()->get();
    return std::string();
  };
}

std::function<std::string(PolicyRule&, const toml::node&)> intKey(std::optional<std::int64_t> PolicyRule::*m,
                                                                  std::int64_t min) {
  return [m, min](PolicyRule& r, const toml::node& n) {
    const std::int64_t v = n.as_integer()->get();
    if (v < min) return "must be at least " + std::to_string(min);
    r.*m = v;
    return std::string();
  };
}

std::function<std::string(PolicyRule&, const toml::node&)> listKey(std::vector<std::string> PolicyRule::*m) {
  return [m](PolicyRule& r, const toml::node& n) {
    r.*m = strings(n);
    return std::string();
  };
}

std::function<std::string(PolicyRule&, const toml::node&)> versionKey(std::uint16_t PolicyRule::*m) {
  return [m](PolicyRule& r, const toml::node& n) {
    const std::uint16_t v = parseTlsVersion(str(n));
    if (v == 0) return "'" + str(n) + "' is not a TLS version (SSLv3, TLSv1.0, TLSv1.1, TLSv1.2, TLSv1.3)";
    r.*m = v;
    return std::string();
  };
}

const std::vector<KeySpec>& keySpecs() {
  using T = toml::node_type;
  static const std::vector<KeySpec> specs = {
      {"id", T::string,
       [](PolicyRule& r, const toml::node& n) {
         r.id = str(n);
         return r.id.empty() ? std::string("must not be empty") : std::string();
       }},
      {"description", T::string,
       [](PolicyRule& r, const toml::node& n) {
         r.description = str(n);
         return std::string();
       }},
      {"severity", T::string,
       [](PolicyRule& r, const toml::node& n) {
         r.severity = str(n);
         if (r.severity == "error" || r.severity == "warning" || r.severity == "note") return std::string();
         return "'" + r.severity + "' is not a severity (error, warning, note)";
       }},
      {"leg", T::string,
       [](PolicyRule& r, const toml::node& n) {
         const std::string v = str(n);
         if (v == "client") r.leg = PolicyLeg::Client;
         else if (v == "upstream") r.leg = PolicyLeg::Upstream;
         else if (v == "both") r.leg = PolicyLeg::Both;
         else return "'" + v + "' is not a leg (client, upstream, both)";
         return std::string();
       }},
      {"hosts", T::array, listKey(&PolicyRule::hosts)},
      {"min_version", T::string, versionKey(&PolicyRule::min_version)},
      {"max_version", T::string, versionKey(&PolicyRule::max_version)},
      {"allowed_ciphers", T::array, listKey(&PolicyRule::allowed_ciphers)},
      {"forbidden_ciphers", T::array, listKey(&PolicyRule::forbidden_ciphers)},
      {"require_alpn", T::boolean, boolKey(&PolicyRule::require_alpn)},
      {"allowed_alpn", T::array, listKey(&PolicyRule::allowed_alpn)},
      {"max_handshake_ms", T::floating_point,
       [](PolicyRule& r, const toml::node& n) {
         const double v =
             n.as_floating_point() ? n.as_floating_point()->get() : static_cast<double>(n.as_integer()->get());
         if (!(v > 0)) return std::string("must be more than 0");
         r.max_handshake_ms = v;
         return std::string();
       }},
      {"require_forward_secrecy", T::boolean, boolKey(&PolicyRule::require_forward_secrecy)},
      {"min_dh_bits", T::integer, intKey(&PolicyRule::min_dh_bits, 1)},
      {"min_ec_bits", T::integer, intKey(&PolicyRule::min_ec_bits, 1)},
      {"min_kex_rating", T::string,
       [](PolicyRule& r, const toml::node& n) {
         r.min_kex_rating = parseKexRating(str(n));
         if (r.min_kex_rating) return std::string();
         return "'" + str(n) + "' is not a rating (strong, acceptable, weak, broken)";
       }},
      {"require_resumption", T::boolean, boolKey(&PolicyRule::require_resumption)},
      {"require_verified", T::boolean, boolKey(&PolicyRule::require_verified)},
      {"require_hostname_match", T::boolean, boolKey(&PolicyRule::require_hostname_match)},
      {"forbid_sha1_signature", T::boolean, boolKey(&PolicyRule::forbid_sha1_signature)},
      {"min_days_to_expiry", T::integer, intKey(&PolicyRule::min_days_to_expiry, 0)},
      {"allowed_key_types", T::array,
       [](PolicyRule& r, const toml::node& n) {
         r.allowed_key_types = strings(n);
         for (auto& t : r.allowed_key_types) {
           std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::toupper(c); });
           if (t != "RSA" && t != "EC" && t != "ED25519" && t != "ED448" && t != "RSA-PSS" && t != "DSA")
             return "'" + t + "' is not a key type (RSA, RSA-PSS, EC, ED25519, ED448, DSA)";
         }
         return std::string();
       }},
      {"min_rsa_bits", T::integer, intKey(&PolicyRule::min_rsa_bits, 1)},
      {"min_ec_key_bits", T::integer, intKey(&PolicyRule::min_ec_key_bits, 1)},
      {"forbid_fatal_alerts", T::boolean, boolKey(&PolicyRule::forbid_fatal_alerts)},
      {"require_handshake", T::boolean, boolKey(&PolicyRule::require_handshake)},
      {"forbid_proxy_downgrade", T::boolean, boolKey(&PolicyRule::forbid_proxy_downgrade)},
  };
  return specs;
}

bool typeFits(const KeySpec& spec, const toml::node& n) {
  if (spec.type == toml::node_type::floating_point) return n.is_floating_point() || n.is_integer();
  if (spec.type != toml::node_type::array) return n.type() == spec.type;
  const auto* a = n.as_array();
  return a && std::all_of(a->begin(), a->end(), [](const toml::node& e) { return e.is_string(); });
}

// The checks a rule makes; a rule with none is refused (it could never fail).
bool checksSomething(const PolicyRule& r) {
  return r.min_version || r.max_version || !r.allowed_ciphers.empty() || !r.forbidden_ciphers.empty() ||
         r.require_alpn || !r.allowed_alpn.empty() || r.max_handshake_ms || r.require_forward_secrecy ||
         r.min_dh_bits || r.min_ec_bits || r.min_kex_rating || r.require_resumption || r.require_verified ||
         r.require_hostname_match || r.forbid_sha1_signature || r.min_days_to_expiry || !r.allowed_key_types.empty() ||
         r.min_rsa_bits || r.min_ec_key_bits || r.forbid_fatal_alerts || r.require_handshake ||
         r.forbid_proxy_downgrade;
}

void parseRule(const toml::table& t, const std::string& file, PolicyRule& rule, std::vector<std::string>& errors) {
  for (auto&& [k, v] : t) {
    const std::string key(k.str());
    const std::string where = at(file, k.source().begin);
    const auto& specs = keySpecs();
    const auto spec = std::find_if(specs.begin(), specs.end(), [&](const KeySpec& s) { return s.name == key; });
    if (spec == specs.end()) {
      const std::string near = nearest(key, policyRuleKeys());
      errors.push_back(where + ": unknown rule key '" + key + "'" +
                       (near.empty() ? std::string(" (see docs/policy.md)") : "; did you mean '" + near + "'?"));
      continue;
    }
    if (!typeFits(*spec, v)) {
      errors.push_back(where + ": '" + key + "' takes " + typeName(spec->type));
      continue;
    }
    if (std::string bad = spec->apply(rule, v); !bad.empty()) errors.push_back(where + ": '" + key + "' " + bad);
  }
}

}  // namespace

std::optional<KexRating> parseKexRating(std::string_view s) {
  if (s == "broken") return KexRating::Broken;
  if (s == "weak") return KexRating::Weak;
  if (s == "acceptable") return KexRating::Acceptable;
  if (s == "strong") return KexRating::Strong;
  return std::nullopt;
}

std::string_view kexRatingName(KexRating r) {
  switch (r) {
    case KexRating::Broken: return "broken";
    case KexRating::Weak: return "weak";
    case KexRating::Acceptable: return "acceptable";
    case KexRating::Strong: break;
  }
  return "strong";
}

std::uint16_t parseTlsVersion(std::string_view s) {
  std::string v(s);
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
  if (v == "sslv3" || v == "ssl3" || v == "3.0") return 0x0300;
  if (v.rfind("tlsv", 0) == 0) v = v.substr(4);
  else if (v.rfind("tls", 0) == 0) v = v.substr(3);
  if (v == "1" || v == "1.0") return 0x0301;
  if (v == "1.1") return 0x0302;
  if (v == "1.2") return 0x0303;
  if (v == "1.3") return 0x0304;
  return 0;
}

const std::vector<std::string>& policyRuleKeys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k;
    for (const auto& s : keySpecs()) k.emplace_back(s.name);
    return k;
  }();
  return keys;
}

std::optional<Policy> parsePolicyText(std::string_view text, const std::string& file, std::string& error) {
  toml::table root;
  try {
    root = toml::parse(text, file);
  } catch (const toml::parse_error& e) {
    error = at(file, e.source().begin) + ": " + std::string(e.description());
    return std::nullopt;
  }
  std::vector<std::string> errors;
  Policy policy;
  policy.file = file;
  for (auto&& [k, v] : root) {
    if (k.str() == "rule") continue;
    const std::string near = nearest(k.str(), {"rule"});
    errors.push_back(at(file, k.source().begin) + ": unknown key '" + std::string(k.str()) +
                     "': a policy is a list of [[rule]] tables" + (near.empty() ? "" : "; did you mean '[[rule]]'?"));
  }
  const toml::node* rules = root.get("rule");
  if (rules && !rules->is_array_of_tables()) {
    errors.push_back(at(file, rules->source().begin) + ": 'rule' must be written as [[rule]] tables");
  } else if (rules) {
    std::set<std::string> ids;
    for (const auto& n : *rules->as_array()) {
      const auto& t = *n.as_table();
      PolicyRule r;
      r.at = at(file, t.source().begin);
      parseRule(t, file, r, errors);
      if (r.id.empty()) errors.push_back(r.at + ": a rule needs an id (e.g. id = \"modern-versions\")");
      else if (!ids.insert(r.id).second) errors.push_back(r.at + ": rule id '" + r.id + "' is used twice");
      if (!checksSomething(r))
        errors.push_back(r.at + ": rule '" + r.id + "' checks nothing (give it at least one of min_version, " +
                         "require_forward_secrecy, min_dh_bits, require_verified, ...)");
      if (r.min_version && r.max_version && r.min_version > r.max_version)
        errors.push_back(r.at + ": rule '" + r.id + "': min_version is above max_version");
      policy.rules.push_back(std::move(r));
    }
  }
  if (errors.empty() && policy.rules.empty())
    errors.push_back(file + ": no [[rule]] tables: the policy checks nothing");
  if (!errors.empty()) {
    error.clear();
    for (const auto& e : errors) error += (error.empty() ? "" : "\n") + e;
    return std::nullopt;
  }
  return policy;
}

std::optional<Policy> readPolicyFile(const std::string& file, std::string& error) {
  const auto text = readTextFile(file, error);
  if (!text) return std::nullopt;
  return parsePolicyText(*text, file, error);
}

bool globMatch(std::string_view p, std::string_view t) {
  // Iterative with one backtrack point: linear in practice, no recursion on hostile input.
  std::size_t pi = 0, ti = 0, star = std::string_view::npos, mark = 0;
  auto eq = [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
  };
  while (ti < t.size()) {
    if (pi < p.size() && (p[pi] == '?' || (p[pi] != '*' && eq(p[pi], t[ti])))) {
      ++pi;
      ++ti;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = ti;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      ti = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

}  // namespace tlstrace::config

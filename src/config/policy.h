// CI policies: a TOML file of `[[rule]]` tables, read into plain values. Each rule names the
// checks it makes with its keys (min_version, require_forward_secrecy, ...); analysis/policy.h
// applies them to a connection's events. Everything unknown or mistyped is refused with its
// file:line:column and the nearest valid name: a CI policy that silently ignores a misspelt key
// would pass the build for the wrong reason.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tlstrace::config {

// Which legs a rule looks at.
enum class PolicyLeg { Client, Upstream, Both };

// The key-exchange ratings of docs/events.md, worst first (so `<` is "worse than").
enum class KexRating { Broken, Weak, Acceptable, Strong };
[[nodiscard]] std::optional<KexRating> parseKexRating(std::string_view s);
[[nodiscard]] std::string_view kexRatingName(KexRating r);

// TLS versions as the events spell them ("SSLv3", "TLSv1.0" .. "TLSv1.3"; "1.2" and "TLSv1" are
// accepted too); the wire number, or 0 when unknown.
[[nodiscard]] std::uint16_t parseTlsVersion(std::string_view s);

struct PolicyRule {
  std::string id;
  std::string description;
  std::string severity = "error";  // error | warning | note (SARIF levels); all of them fail the run
  std::string at;                  // "file:line:column" of the [[rule]] table
  PolicyLeg leg = PolicyLeg::Both;
  std::vector<std::string> hosts;  // SNI or target globs; empty = every host

  // Negotiated parameters (at tls.established).
  std::uint16_t min_version = 0, max_version = 0;  // wire numbers; 0 = no limit
  std::vector<std::string> allowed_ciphers;        // IANA names or globs (TLS_ECDHE_*)
  std::vector<std::string> forbidden_ciphers;
  std::optional<bool> require_alpn;
  std::vector<std::string> allowed_alpn;
  std::optional<double> max_handshake_ms;
  // Key exchange (at tls.key_exchange).
  std::optional<bool> require_forward_secrecy;
  std::optional<std::int64_t> min_dh_bits, min_ec_bits;
  std::optional<KexRating> min_kex_rating;
  std::optional<bool> require_resumption;  // a leg offered a ticket/PSK: it must be taken
  // Certificate (at tls.trust, upstream only: the client leg's certificate is the proxy's).
  std::optional<bool> require_verified, require_hostname_match, forbid_sha1_signature;
  std::optional<std::int64_t> min_days_to_expiry;
  std::vector<std::string> allowed_key_types;  // RSA, EC, ED25519, ED448 (the chain's key.type)
  std::optional<std::int64_t> min_rsa_bits, min_ec_key_bits;
  // Failures and the connection as a whole.
  std::optional<bool> forbid_fatal_alerts;     // a fatal alert sent or received on the leg
  std::optional<bool> require_handshake;       // the leg's handshake completed (no tls.error before it)
  std::optional<bool> forbid_proxy_downgrade;  // conn.summary's downgrade names a proxy-induced one
};

struct Policy {
  std::string file;
  std::vector<PolicyRule> rules;
};

// The keys a rule may have (for "did you mean" and the docs).
[[nodiscard]] const std::vector<std::string>& policyRuleKeys();

// nullopt with `error` ("file:line:column: what", one problem per line) when the file is not a
// usable policy.
[[nodiscard]] std::optional<Policy> parsePolicyText(std::string_view text, const std::string& file, std::string& error);
[[nodiscard]] std::optional<Policy> readPolicyFile(const std::string& file, std::string& error);

// Shell-style glob with `*` and `?`, ASCII case-insensitive (host names and suite names).
[[nodiscard]] bool globMatch(std::string_view pattern, std::string_view text);

}  // namespace tlstrace::config

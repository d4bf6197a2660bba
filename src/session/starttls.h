// STARTTLS: the plaintext preamble of a protocol that upgrades to TLS in-band (SMTP, IMAP, POP3,
// PostgreSQL, MySQL, LDAP), as a small pure state machine. It sees every byte of both directions
// before TLS, frames them into the protocol's messages (through wire::ByteReader), names each one
// (a step of the conn.starttls event), and answers when the preamble is over: the TLS handshake
// comes next (the server accepted the client's request, or the client asked and goes on at once,
// as MySQL's does), or this is not a STARTTLS exchange after all (relay as plain TCP). A refusal
// (SMTP 454, IMAP NO/BAD, POP3 -ERR, PostgreSQL 'N', an LDAP resultCode) is reported and the
// preamble goes on: the client has the server's own answer. No I/O: the session relays what it
// says to forward.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tlstrace::session {

enum class StartTlsProto { Smtp, Imap, Pop3, Postgres, Mysql, Ldap };

[[nodiscard]] std::optional<StartTlsProto> parseStartTlsProto(std::string_view s);
[[nodiscard]] std::string_view startTlsName(StartTlsProto p);
// The protocol a connection to `port` speaks under the --starttls setting: "off" none, "auto" by
// the well-known port (25/587 SMTP, 143 IMAP, 110 POP3, 5432 PostgreSQL, 3306 MySQL, 389 LDAP),
// else the protocol named.
[[nodiscard]] std::optional<StartTlsProto> startTlsFor(std::string_view setting, std::uint16_t port);

// One message of the preamble, named.
struct StartTlsStep {
  bool from_client = false;
  std::string step;  // banner, ehlo, capabilities, command, reply, starttls, ready, refused, ...
  std::string text;  // the message as text (lines joined by \n), or a summary of a binary one
};

struct StartTlsResult {
  enum class Kind {
    Continue,   // keep relaying the preamble
    Upgrade,    // TLS starts now: the client's ClientHello comes next
    DirectTls,  // the client's first bytes are TLS already (implicit TLS, PostgreSQL 17 direct)
    Plain,      // not (or no longer) a STARTTLS exchange: relay as plain TCP
  };
  Kind kind = Kind::Continue;
  std::vector<std::uint8_t> forward;  // whole messages of this direction, for the other peer now
  std::vector<std::uint8_t> rest;     // Upgrade/DirectTls from the client: its TLS bytes so far
  std::vector<std::uint8_t> back;     // Plain: the other direction's held partial message, to its peer
  std::vector<StartTlsStep> steps;
  std::optional<std::string> refused;  // the server refused STARTTLS: its answer
  std::string why;                     // Plain: why
};

class StartTlsMachine {
 public:
  explicit StartTlsMachine(StartTlsProto p) : proto_(p) {}
  [[nodiscard]] StartTlsProto proto() const { return proto_; }
  // Bytes from one peer. Whole messages are handed back to forward; a partial one is held.
  [[nodiscard]] StartTlsResult feed(bool from_client, std::span<const std::uint8_t> bytes);
  // The partial message held from one peer (it closed): given back to be relayed as it is.
  [[nodiscard]] std::vector<std::uint8_t> takeHeld(bool from_client) {
    return std::exchange(held_[from_client ? 1 : 0], {});
  }

  // How one message is judged (internal, per protocol in starttls.cpp).
  enum class Verdict { Continue, Upgrade, Plain };

 private:
  // The length of the first whole message of `b`; 0: need more; SIZE_MAX: malformed.
  [[nodiscard]] std::size_t frame(bool from_client, std::span<const std::uint8_t> b) const;
  Verdict onMessage(bool from_client, std::span<const std::uint8_t> msg, StartTlsResult& r);
  Verdict smtp(bool from_client, std::string_view line, StartTlsResult& r);
  Verdict imap(bool from_client, std::string_view line, StartTlsResult& r);
  Verdict pop3(bool from_client, std::string_view line, StartTlsResult& r);
  Verdict postgres(bool from_client, std::span<const std::uint8_t> msg, StartTlsResult& r);
  Verdict mysql(bool from_client, std::span<const std::uint8_t> msg, StartTlsResult& r);
  Verdict ldap(bool from_client, std::span<const std::uint8_t> msg, StartTlsResult& r);
  Verdict plain(StartTlsResult& r, std::string why);
  void add(StartTlsResult& r, bool from_client, std::string step, std::string text);

  StartTlsProto proto_;
  std::vector<std::uint8_t> held_[2];  // [from_client]: a partial message
  bool server_spoke_ = false;
  bool client_spoke_ = false;
  bool awaiting_ = false;           // the client asked for TLS; the server's answer decides
  bool gss_ = false;                // PostgreSQL: a GSSENCRequest awaits its answer
  std::string last_command_;        // the client's last command verb (uppercase)
  std::string imap_tag_;            // the tag of IMAP's STARTTLS command
  std::string reply_;               // a multi-line reply gathered so far (SMTP, POP3 CAPA)
  bool multiline_ = false;          // POP3: inside a multi-line reply
  bool server_spoke_once_ = false;  // the server's first message was named (banner)
  int steps_ = 0;
};

}  // namespace tlstrace::session

// The STARTTLS preamble machine: framing and the text protocols (SMTP, IMAP, POP3). The binary
// ones (PostgreSQL, MySQL, LDAP) are in starttls_binary.cpp.
#include "session/starttls.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "session/starttls_internal.h"
#include "wire/byte_reader.h"

namespace tlstrace::session {

namespace {

constexpr std::size_t kMaxMessage = 64 * 1024;  // a preamble message larger than this is not one
constexpr int kMaxSteps = 64;                   // nor is a preamble this long
constexpr std::size_t kMaxText = 1024;

std::string upper(std::string_view s) {
  std::string u(s);
  for (char& c : u) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return u;
}

// The first word of a line, and what follows it.
std::string_view word(std::string_view& s) {
  const auto sp = s.find(' ');
  const std::string_view w = s.substr(0, sp);
  s = sp == std::string_view::npos ? std::string_view{} : s.substr(sp + 1);
  return w;
}

bool isLineProto(StartTlsProto p) {
  return p == StartTlsProto::Smtp || p == StartTlsProto::Imap || p == StartTlsProto::Pop3;
}

}  // namespace

std::optional<StartTlsProto> parseStartTlsProto(std::string_view s) {
  static constexpr std::array<std::pair<std::string_view, StartTlsProto>, 6> kNames{{
      {"smtp", StartTlsProto::Smtp},
      {"imap", StartTlsProto::Imap},
      {"pop3", StartTlsProto::Pop3},
      {"postgres", StartTlsProto::Postgres},
      {"mysql", StartTlsProto::Mysql},
      {"ldap", StartTlsProto::Ldap},
  }};
  for (const auto& [n, p] : kNames)
    if (n == s) return p;
  return std::nullopt;
}

std::string_view startTlsName(StartTlsProto p) {
  switch (p) {
    case StartTlsProto::Smtp: return "smtp";
    case StartTlsProto::Imap: return "imap";
    case StartTlsProto::Pop3: return "pop3";
    case StartTlsProto::Postgres: return "postgres";
    case StartTlsProto::Mysql: return "mysql";
    case StartTlsProto::Ldap: return "ldap";
  }
  return "?";
}

std::optional<StartTlsProto> startTlsFor(std::string_view setting, std::uint16_t port) {
  if (setting == "off" || setting.empty()) return std::nullopt;
  if (setting != "auto") return parseStartTlsProto(setting);
  switch (port) {
    case 25:
    case 587: return StartTlsProto::Smtp;
    case 143: return StartTlsProto::Imap;
    case 110: return StartTlsProto::Pop3;
    case 5432: return StartTlsProto::Postgres;
    case 3306: return StartTlsProto::Mysql;
    case 389: return StartTlsProto::Ldap;
    default: return std::nullopt;
  }
}

std::string lineText(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  return std::string(line.substr(0, kMaxText));
}

StartTlsResult StartTlsMachine::feed(bool from_client, std::span<const std::uint8_t> bytes) {
  StartTlsResult r;
  auto& buf = held_[from_client ? 1 : 0];
  buf.insert(buf.end(), bytes.begin(), bytes.end());
  auto take = [&](std::size_t n) {
    r.forward.assign(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
  };
  // A TLS record (handshake, RFC 8446 5.1) before the server said anything: implicit TLS on this
  // port, or PostgreSQL 17's direct SSL negotiation (sslnegotiation=direct).
  if (from_client && !client_spoke_ && !server_spoke_ && !buf.empty() && buf[0] == 0x16) {
    r.kind = StartTlsResult::Kind::DirectTls;
    r.rest = std::move(buf);
    buf.clear();
    return r;
  }
  std::size_t off = 0;
  while (off < buf.size()) {
    const std::span<const std::uint8_t> rest(buf.data() + off, buf.size() - off);
    const std::size_t n = frame(from_client, rest);
    if (n == 0) {
      if (rest.size() > kMaxMessage) (void)plain(r, "a preamble message over 64 KiB");
      break;
    }
    if (n == SIZE_MAX) {
      (void)plain(r, std::string("not a ") + std::string(startTlsName(proto_)) + " message from the " +
                         (from_client ? "client" : "server"));
      break;
    }
    (from_client ? client_spoke_ : server_spoke_) = true;
    const Verdict v = ++steps_ > kMaxSteps ? plain(r, "no STARTTLS within " + std::to_string(kMaxSteps) + " messages")
                                           : onMessage(from_client, rest.first(n), r);
    off += n;
    if (v == Verdict::Upgrade) {
      take(off);
      if (!from_client && !buf.empty()) {
        // The server sent more after its yes: bytes that would be taken for TLS (RFC 3207 5,
        // CVE-2021-23214). Not TLS: the connection stays plain, as it is.
        r.steps.clear();
        (void)plain(r, "the server sent bytes after accepting STARTTLS");
        r.forward.insert(r.forward.end(), buf.begin(), buf.end());
        buf.clear();
        r.back = std::move(held_[1]);
        held_[1].clear();
        return r;
      }
      r.kind = StartTlsResult::Kind::Upgrade;
      r.rest = std::move(buf);
      buf.clear();
      return r;
    }
    if (v == Verdict::Plain) break;
  }
  if (r.kind == StartTlsResult::Kind::Plain) {
    take(buf.size());
    auto& other = held_[from_client ? 0 : 1];
    r.back = std::move(other);
    other.clear();
    return r;
  }
  take(off);
  return r;
}

std::size_t StartTlsMachine::frame(bool from_client, std::span<const std::uint8_t> b) const {
  if (isLineProto(proto_)) {
    const auto nl = std::find(b.begin(), b.end(), std::uint8_t{'\n'});
    return nl == b.end() ? 0 : static_cast<std::size_t>(nl - b.begin()) + 1;
  }
  return frameBinary(proto_, from_client, awaiting_ || gss_, b);
}

StartTlsMachine::Verdict StartTlsMachine::onMessage(bool from_client, std::span<const std::uint8_t> msg,
                                                    StartTlsResult& r) {
  const std::string_view line(reinterpret_cast<const char*>(msg.data()), msg.size());
  switch (proto_) {
    case StartTlsProto::Smtp: return smtp(from_client, line, r);
    case StartTlsProto::Imap: return imap(from_client, line, r);
    case StartTlsProto::Pop3: return pop3(from_client, line, r);
    case StartTlsProto::Postgres: return postgres(from_client, msg, r);
    case StartTlsProto::Mysql: return mysql(from_client, msg, r);
    case StartTlsProto::Ldap: return ldap(from_client, msg, r);
  }
  return Verdict::Plain;
}

StartTlsMachine::Verdict StartTlsMachine::plain(StartTlsResult& r, std::string why) {
  r.kind = StartTlsResult::Kind::Plain;
  r.why = std::move(why);
  return Verdict::Plain;
}

void StartTlsMachine::add(StartTlsResult& r, bool from_client, std::string step, std::string text) {
  r.steps.push_back(StartTlsStep{from_client, std::move(step), std::move(text)});
}

// SMTP (RFC 5321 4.1, 4.2; RFC 3207 4): replies are "ddd text" lines, "ddd-text" when more
// follow. Before STARTTLS a client says EHLO/HELO and may NOOP, RSET, HELP or QUIT; any other
// command (MAIL, AUTH) means the session goes on in plaintext.
StartTlsMachine::Verdict StartTlsMachine::smtp(bool from_client, std::string_view line, StartTlsResult& r) {
  const std::string text = lineText(line);
  if (from_client) {
    std::string_view args = text;
    last_command_ = upper(word(args));
    static constexpr std::array<std::string_view, 6> kPreamble{"EHLO", "HELO", "NOOP", "RSET", "HELP", "QUIT"};
    if (last_command_ == "STARTTLS") {
      awaiting_ = true;
      add(r, true, "starttls", text);
      return Verdict::Continue;
    }
    if (std::find(kPreamble.begin(), kPreamble.end(), last_command_) == kPreamble.end())
      return plain(r, "the client went on without STARTTLS");
    add(r, true, last_command_ == "EHLO" || last_command_ == "HELO" ? "ehlo" : "command", text);
    return Verdict::Continue;
  }
  if (text.size() < 3 || !std::all_of(text.begin(), text.begin() + 3, [](char c) { return c >= '0' && c <= '9'; }))
    return plain(r, "not an SMTP reply from the server");
  if (!reply_.empty()) reply_ += '\n';
  reply_ += text;
  if (text.size() > 3 && text[3] == '-') return Verdict::Continue;  // more lines follow
  std::string reply = std::exchange(reply_, {});
  const std::string_view code = std::string_view(text).substr(0, 3);
  if (awaiting_) {
    awaiting_ = false;
    if (code == "220") {
      add(r, false, "ready", std::move(reply));
      return Verdict::Upgrade;
    }
    r.refused = reply;
    add(r, false, "refused", std::move(reply));
    return Verdict::Continue;
  }
  const bool banner = !std::exchange(server_spoke_once_, true);
  add(r, false, banner ? "banner" : last_command_ == "EHLO" ? "capabilities" : "reply", std::move(reply));
  return Verdict::Continue;
}

// IMAP (RFC 9051 6.1.1, 6.2.1; RFC 3501): "tag COMMAND" lines from the client, "* ..." untagged
// data and "tag OK/NO/BAD" completions from the server. Before STARTTLS: CAPABILITY, NOOP, ID,
// LOGOUT; a LOGIN or an AUTHENTICATE means plaintext.
StartTlsMachine::Verdict StartTlsMachine::imap(bool from_client, std::string_view line, StartTlsResult& r) {
  const std::string text = lineText(line);
  std::string_view rest = text;
  const std::string tag(word(rest));
  if (from_client) {
    last_command_ = upper(word(rest));
    if (!text.empty() && text.back() == '}') return plain(r, "an IMAP literal before STARTTLS");
    if (last_command_ == "STARTTLS") {
      awaiting_ = true;
      imap_tag_ = tag;
      add(r, true, "starttls", text);
      return Verdict::Continue;
    }
    static constexpr std::array<std::string_view, 4> kPreamble{"CAPABILITY", "NOOP", "ID", "LOGOUT"};
    if (std::find(kPreamble.begin(), kPreamble.end(), last_command_) == kPreamble.end())
      return plain(r, "the client went on without STARTTLS");
    add(r, true, "command", text);
    return Verdict::Continue;
  }
  const std::string status = upper(word(rest));
  if (tag == "*") {
    if (status == "PREAUTH") return plain(r, "the server pre-authenticated the session (no STARTTLS then)");
    const bool caps = status == "CAPABILITY" || text.find("[CAPABILITY ") != std::string::npos;
    add(r, false, !server_spoke_once_ ? "banner" : caps ? "capabilities" : "reply", text);
    server_spoke_once_ = true;
    return Verdict::Continue;
  }
  if (tag == "+") return plain(r, "an IMAP continuation request before STARTTLS");
  server_spoke_once_ = true;
  if (awaiting_ && tag == imap_tag_) {
    awaiting_ = false;
    if (status == "OK") {
      add(r, false, "ready", text);
      return Verdict::Upgrade;
    }
    r.refused = text;
    add(r, false, "refused", text);
    return Verdict::Continue;
  }
  add(r, false, "reply", text);
  return Verdict::Continue;
}

// POP3 (RFC 1939 3; RFC 2449 5 CAPA; RFC 2595 4 STLS): "+OK"/"-ERR" lines, multi-line answers
// ending in a lone ".". Before STLS: CAPA, NOOP, QUIT; USER, PASS, APOP, AUTH mean plaintext.
StartTlsMachine::Verdict StartTlsMachine::pop3(bool from_client, std::string_view line, StartTlsResult& r) {
  const std::string text = lineText(line);
  if (from_client) {
    std::string_view args = text;
    last_command_ = upper(word(args));
    if (last_command_ == "STLS") {
      awaiting_ = true;
      add(r, true, "starttls", text);
      return Verdict::Continue;
    }
    if (last_command_ != "CAPA" && last_command_ != "NOOP" && last_command_ != "QUIT")
      return plain(r, "the client went on without STLS");
    add(r, true, "command", text);
    return Verdict::Continue;
  }
  if (multiline_) {
    if (text == ".") {
      multiline_ = false;
      add(r, false, "capabilities", std::exchange(reply_, {}));
      return Verdict::Continue;
    }
    reply_ += '\n';
    reply_ += text.substr(0, kMaxText);
    return Verdict::Continue;
  }
  const bool ok = text.starts_with("+OK");
  if (!ok && !text.starts_with("-ERR")) return plain(r, "not a POP3 reply from the server");
  if (awaiting_) {
    awaiting_ = false;
    if (ok) {
      add(r, false, "ready", text);
      return Verdict::Upgrade;
    }
    r.refused = text;
    add(r, false, "refused", text);
    return Verdict::Continue;
  }
  if (ok && last_command_ == "CAPA") {
    multiline_ = true;
    reply_ = text;
    last_command_.clear();
    return Verdict::Continue;
  }
  add(r, false, server_spoke_once_ ? "reply" : "banner", text);
  server_spoke_once_ = true;
  return Verdict::Continue;
}

}  // namespace tlstrace::session

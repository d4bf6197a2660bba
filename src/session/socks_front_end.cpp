#include "session/socks_front_end.h"

#include <cerrno>

namespace tlstrace::session {

namespace socks = wire::socks;

SocksFrontEnd::SocksFrontEnd(const std::string& user_pass) {
  if (user_pass.empty()) return;
  const auto colon = user_pass.find(':');
  required_.user = user_pass.substr(0, colon);
  if (colon != std::string::npos) required_.password = user_pass.substr(colon + 1);
}

FrontStep SocksFrontEnd::onClientBytes(std::span<const std::uint8_t> bytes) const {
  using K = FrontStep::Kind;
  socks::Dialogue d = socks::decodeClient(bytes, required_);
  FrontStep st;
  st.interim = std::move(d.interim);
  switch (d.kind) {
    case socks::Dialogue::Kind::NeedMore: return st;
    case socks::Dialogue::Kind::Error:
      st.kind = K::Refuse;
      st.reply = std::move(d.error_reply);
      st.cause = std::move(d.cause);
      st.reason = std::move(d.reason);
      return st;
    case socks::Dialogue::Kind::Connect: break;
  }
  st.kind = K::Tunnel;
  st.target = config::HostPort{std::move(d.host), d.port};
  st.method = "SOCKS5 CONNECT";
  st.reply = socks::reply(socks::Rep::Succeeded);
  st.consumed = d.consumed;
  return st;
}

// RFC 1928 section 6: the reply codes closest to what the connect said.
std::optional<std::string> SocksFrontEnd::failureReply(int status, int err) const {
  socks::Rep rep = socks::Rep::GeneralFailure;
  if (status == 403) rep = socks::Rep::NotAllowed;
  else if (status == 504) rep = socks::Rep::TtlExpired;  // timed out: as Dante and Tor answer
  else if (err == ECONNREFUSED) rep = socks::Rep::ConnectionRefused;
  else if (err == EHOSTUNREACH) rep = socks::Rep::HostUnreachable;
  else if (err == ENETUNREACH) rep = socks::Rep::NetworkUnreachable;
  else if (status == 502 && err == 0) rep = socks::Rep::HostUnreachable;  // no such name
  return socks::reply(rep);
}

}  // namespace tlstrace::session

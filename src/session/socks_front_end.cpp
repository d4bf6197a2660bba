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

// RFC 1928 section 6: BND.ADDR and BND.PORT of a CONNECT's success are the proxy's own end of
// its connection to the target.
std::string SocksFrontEnd::connectedReply(std::string /*reply*/, const std::string& local) const {
  return socks::succeeded(local);
}

// RFC 1928 section 6: the reply code closest to what the connect said, and the cause named after it.
std::optional<OwnReply> SocksFrontEnd::failureReply(int status, int err) const {
  using socks::Rep;
  auto own = [](Rep rep, const char* cause) { return OwnReply{socks::reply(rep), cause}; };
  if (status == 403) return own(Rep::NotAllowed, "not_allowed");                  // the exposure rules (docs/cli.md)
  if (status == 504 || err == ETIMEDOUT) return own(Rep::TtlExpired, "timeout");  // as Dante and Tor answer
  if (err == ECONNREFUSED) return own(Rep::ConnectionRefused, "connection_refused");
  if (err == ENETUNREACH) return own(Rep::NetworkUnreachable, "network_unreachable");
  if (err == EHOSTUNREACH || err == 0) return own(Rep::HostUnreachable, "host_unreachable");  // (0: no such name)
  return own(Rep::GeneralFailure, "connect_failed");
}

}  // namespace tlstrace::session

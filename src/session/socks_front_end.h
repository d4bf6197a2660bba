// SOCKS5 mode (--mode socks5): the client names its target in a SOCKS5 CONNECT request (RFC 1928),
// after RFC 1929 username/password authentication when --proxy-auth is set. The wire format is
// decoded by wire/socks.h; this maps it onto the session's steps and replies.
#pragma once
#include "session/front_end.h"
#include "wire/socks.h"

namespace tlstrace::session {

class SocksFrontEnd final : public FrontEnd {
 public:
  // `user_pass`: "user:password" required from clients (RFC 1929), or empty for no authentication.
  explicit SocksFrontEnd(const std::string& user_pass);
  [[nodiscard]] config::Mode mode() const override { return config::Mode::Socks5; }
  [[nodiscard]] std::optional<config::HostPort> fixedTarget() const override { return std::nullopt; }
  [[nodiscard]] FrontStep onClientBytes(std::span<const std::uint8_t> bytes) const override;
  [[nodiscard]] bool relaysPlaintext() const override { return true; }
  // Refused at accept time: no greeting read yet, so no SOCKS reply would make sense; closed.
  [[nodiscard]] bool answersRefusals() const override { return false; }
  [[nodiscard]] std::optional<OwnReply> failureReply(int status, int err) const override;
  [[nodiscard]] std::string connectedReply(std::string reply, const std::string& local) const override;

 private:
  wire::socks::Credentials required_;
};

}  // namespace tlstrace::session

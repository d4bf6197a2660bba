// Which connections are relayed untouched (--passthrough rules, and hosts --auto-passthrough
// learnt), shared by every connection of every io thread.
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "config/passthrough.h"

namespace tlstrace::session {

class Passthrough {
 public:
  // `auto_after`: certificate rejections before a host passes for a client (0: never).
  Passthrough(std::vector<config::PassthroughRule> rules, unsigned auto_after)
      : rules_(std::move(rules)), auto_after_(auto_after) {}
  // From the configuration (its patterns are validated already; a bad one is skipped); null when
  // it asks for no passthrough at all.
  [[nodiscard]] static std::unique_ptr<Passthrough> fromConfig(const config::ProxyConfig& cfg);

  // The rule that passes this connection through ("auto" for a learnt host), or nullopt.
  [[nodiscard]] std::optional<std::string> match(const std::string& client_ip,
                                                 const config::PassthroughSubject& s) const;
  // The client aborted the handshake with a certificate alert for `host`: counted; true when this
  // rejection makes the host pass for this client (the count is then `count`).
  [[nodiscard]] bool noteRejection(const std::string& client_ip, const std::string& host, unsigned& count);
  [[nodiscard]] bool learning() const { return auto_after_ > 0; }

 private:
  std::vector<config::PassthroughRule> rules_;
  unsigned auto_after_ = 0;
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, unsigned> rejections_;  // (client ip, host)
};

}  // namespace tlstrace::session

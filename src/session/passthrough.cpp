#include "session/passthrough.h"

namespace tlstrace::session {

std::unique_ptr<Passthrough> Passthrough::fromConfig(const config::ProxyConfig& cfg) {
  if (cfg.passthrough.empty() && cfg.auto_passthrough == 0) return nullptr;
  std::vector<config::PassthroughRule> rules;
  for (const auto& p : cfg.passthrough) {
    std::string err;
    if (auto r = config::parsePassthrough(p, err)) rules.push_back(std::move(*r));
  }
  return std::make_unique<Passthrough>(std::move(rules), cfg.auto_passthrough);
}

std::optional<std::string> Passthrough::match(const std::string& client_ip, const config::PassthroughSubject& s) const {
  for (const auto& r : rules_)
    if (config::matches(r, s)) return r.text;
  if (auto_after_ == 0) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = rejections_.find({client_ip, s.host});
  if (it != rejections_.end() && it->second >= auto_after_) return "auto";
  return std::nullopt;
}

bool Passthrough::noteRejection(const std::string& client_ip, const std::string& host, unsigned& count) {
  if (auto_after_ == 0 || host.empty()) return false;
  std::lock_guard<std::mutex> lock(mu_);
  count = ++rejections_[{client_ip, host}];
  return count == auto_after_;
}

}  // namespace tlstrace::session

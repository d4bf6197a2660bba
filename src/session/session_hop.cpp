// ProxySession through an upstream proxy (--upstream-proxy): what a failed hop means. The hop
// itself is net/'s (net/upstream_hop.cpp drives wire/proxy_hop.h); the session chooses it per
// target (act::Connect::via) and explains its failures.
#include "config/upstream_proxy.h"
#include "session/proxy_session.h"

namespace tlstrace::session {

// tls.error on the upstream leg, stage "connect": which hop failed and what to do about it. The
// client's own error (a handshake_failure alert, or the HTTP 502) follows as without a proxy and
// takes this cause (abortClientHandshake).
void ProxySession::traceProxyHopFailure(const in::ConnectFailed& f) {
  trace::ev::TlsError e;
  e.reason = f.why;
  e.stage = "connect";
  const std::string& url = via_->url;
  if (f.hop == "target") {
    e.cause = "upstream_unreachable";
    e.hint = "the upstream proxy " + url + " could not reach " + target_.str() +
             ": the target is down or not reachable from the proxy";
  } else if (f.proxy_status == 1 && via_->scheme == config::UpstreamProxy::Scheme::Socks5) {
    // RFC 1928 6: REP 1 is a general failure, not a refusal by rule (REP 2); proxies send it
    // when they cannot resolve the target, among other things.
    e.cause = "upstream_proxy_refused";
    e.hint = "the upstream proxy " + url + " failed the tunnel to " + target_.str() +
             " (REP 1, general SOCKS server failure): often it cannot resolve or reach that name; its own log "
             "says which. Check the name from the proxy's side, or send this target direct with "
             "--upstream-proxy-exclude";
  } else if (f.proxy_status >= 0) {
    e.cause = "upstream_proxy_refused";
    e.hint = "the upstream proxy " + url + " refused the tunnel to " + target_.str() +
             ": check its access rules (allowed ports, ACLs) and the credentials of --upstream-proxy, or send "
             "this target direct with --upstream-proxy-exclude";
  } else {
    e.cause = "upstream_proxy_failed";
    e.hint = "the upstream proxy " + url + " could not be used: check that it runs at that address and speaks " +
             (via_->scheme == config::UpstreamProxy::Scheme::Http ? "HTTP CONNECT" : "SOCKS5") +
             ", or send this target direct with --upstream-proxy-exclude";
  }
  upstream_.error_cause = e.cause;
  emit(trace::Leg::Upstream, std::move(e));
}

}  // namespace tlstrace::session

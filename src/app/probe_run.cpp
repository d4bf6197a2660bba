// `tlstrace probe`: the composition for one server. Each handshake is a net::Connection driving
// a ProxySession without a client leg (session/probe.h): the proxy's upstream leg, its decoder,
// analysis, trust verdict and events as they are. The report is read back from those events.
#include "app/probe_run.h"

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <deque>
#include <iostream>
#include <map>
#include <mutex>

#include "analysis/kex.h"
#include "app/policy_run.h"
#include "config/policy.h"
#include "config/upstream_proxy.h"
#include "net/connection.h"
#include "net/services.h"
#include "session/front_end.h"
#include "sinks/sinks.h"
#include "tls/cert_summary.h"
#include "tls/context.h"
#include "trace/event.h"
#include "trace/text.h"

namespace tlstrace::app {

using trace::Json;
namespace asio = boost::asio;

namespace {

// Every event of a connection as its JSON object, for the report and the scan to read once the
// tracer has written them out.
class Collector : public trace::Sink {
 public:
  void write(const trace::Event& e) override {
    std::lock_guard lock(mu_);
    by_conn_[e.conn].push_back(trace::toJson(e));
  }
  std::vector<Json> take(std::uint64_t conn) {
    std::lock_guard lock(mu_);
    auto it = by_conn_.find(conn);
    if (it == by_conn_.end()) return {};
    auto out = std::move(it->second);
    by_conn_.erase(it);
    return out;
  }

 private:
  std::mutex mu_;
  std::map<std::uint64_t, std::vector<Json>> by_conn_;
};

std::string str(const Json* j) { return j && j->isString() ? std::string(j->asString()) : std::string(); }

// The first upstream event of a kind, or null.
const Json* eventOf(const std::vector<Json>& evs, std::string_view kind) {
  for (const Json& e : evs)
    if (str(e.find("event")) == kind && str(e.find("leg")) == "upstream") return &e;
  return nullptr;
}

ScanOutcome outcomeOf(const std::vector<Json>& evs) {
  ScanOutcome r;
  if (const Json* est = eventOf(evs, "tls.established")) {
    r.ok = true;
    r.version = str(est->find("version"));
    if (const Json* c = est->find("cipher")) r.cipher = str(c->find("name"));
    r.group = str(est->find("group"));
  }
  for (const Json& e : evs)
    if (str(e.find("event")) == "tls.message" && str(e.find("type")) == "HelloRetryRequest") r.hrr = true;
  if (const Json* err = eventOf(evs, "tls.error")) r.cause = str(err->find("cause"));
  if (const Json* k = eventOf(evs, "tls.key_exchange")) {
    r.key_exchange = Json::object();
    for (const auto& [key, v] : k->asObject())
      if (key != "ts" && key != "conn" && key != "leg" && key != "event") r.key_exchange.set(key, Json(v));
  }
  return r;
}

// Carries out handshakes, at most `limit` at a time, on one io_context. Each keeps its context,
// services and front end until the runner goes (the connection refers to them to its end).
class Runner : public ScanRunner {
 public:
  Runner(asio::io_context& io, const net::Services& base, session::ProbeSpec spec, std::string ca, unsigned limit)
      : io_(io), base_(base), spec_(std::move(spec)), ca_(std::move(ca)), limit_(std::max(1u, limit)) {}

  using Done = std::function<void(std::uint64_t id, std::vector<Json> events)>;
  void run(const ScanOffer& o, const session::ProbeSpec& spec, trace::Tracer& tracer, Collector& col, Done done) {
    queue_.push_back({o, spec, &tracer, &col, std::move(done)});
    pump();
  }
  void handshake(const ScanOffer& o, std::function<void(const ScanOutcome&)> done) override {
    run(o, spec_, *scan_tracer, *scan_collector,
        [done = std::move(done)](std::uint64_t, std::vector<Json> evs) { done(outcomeOf(evs)); });
  }
  trace::Tracer* scan_tracer = nullptr;
  Collector* scan_collector = nullptr;
  std::uint64_t next_id = 1;

 private:
  struct Job {
    ScanOffer offer;
    session::ProbeSpec spec;
    trace::Tracer* tracer;
    Collector* col;
    Done done;
  };
  struct Held {
    tls::SslCtxPtr ctx;
    net::Services svc;
    std::unique_ptr<session::ReverseFrontEnd> front;
  };

  void pump() {
    while (active_ < limit_ && !queue_.empty()) {
      Job j = std::move(queue_.front());
      queue_.pop_front();
      launch(std::move(j));
    }
  }

  void launch(Job j) {
    const std::uint64_t id = next_id++;
    auto& h = *held_.emplace_back(std::make_unique<Held>());
    try {
      const ScanOffer& o = j.offer;
      // Verified and traced, never enforced: the verdict is part of the report.
      h.ctx = tls::makeUpstreamContext({o.min, o.max, o.ciphers, o.ciphersuites, o.groups}, ca_, true);
      if (!o.sigalgs.empty()) tls::setSignatureAlgorithms(h.ctx.get(), o.sigalgs);
    } catch (const std::exception& e) {
      spdlog::debug("probe offer refused by OpenSSL: {}", e.what());
      j.done(id, {});  // nothing OpenSSL can offer: the candidate is not accepted
      return;
    }
    h.svc = base_;
    h.svc.upstream_ctx = h.ctx.get();
    h.svc.tracer = j.tracer;
    h.front = std::make_unique<session::ReverseFrontEnd>(j.spec.target);
    ++active_;
    auto conn = std::make_shared<net::Connection>(
        net::tcp::socket(io_), h.svc, *h.front, id,
        [this, tracer = j.tracer, col = j.col, done = std::move(j.done)](std::uint64_t cid) {
          tracer->flush();  // its events are written (and collected) before they are read
          --active_;
          done(cid, col->take(cid));
          pump();
        });
    conn->startProbe(j.spec);
  }

  asio::io_context& io_;
  const net::Services& base_;
  session::ProbeSpec spec_;
  std::string ca_;
  unsigned limit_;
  unsigned active_ = 0;
  std::deque<Job> queue_;
  std::vector<std::unique_ptr<Held>> held_;
};

}  // namespace

CLI::App* addProbeCommand(CLI::App& app, ProbeOptions& opt) {
  CLI::App* p = app.add_subcommand("probe", "one TLS handshake to a server (no proxy): its trace and a report");
  p->add_option("target", opt.target, "HOST:PORT of the server")->required();
  p->add_option("--sni", opt.sni, "server name to send (default: HOST when it is a name)");
  p->add_flag("--no-sni", opt.no_sni, "send no server_name");
  p->add_option("--alpn", opt.alpn, "protocols to offer, e.g. h2,http/1.1")->delimiter(',');
  p->add_option("--scan", opt.scan, "also find what the server accepts: versions,ciphers,groups,sigalgs (or all)")
      ->delimiter(',')
      ->check(CLI::IsMember({"versions", "ciphers", "groups", "sigalgs", "all"}));
  p->add_option("--policy", opt.policy_file, "apply a policy (docs/policy.md) to the handshake; exit 1 on a violation");
  p->add_flag("--json", opt.json, "print the report as one JSON object (docs/probe.md) instead of the trace and text");
  p->add_option("--events", opt.events_file, "write the handshake's events (JSON Lines) to FILE ('-' = stdout)");
  p->add_option("--tls-min", opt.tls_min, "lowest version to offer (1.0 .. 1.3)");
  p->add_option("--tls-max", opt.tls_max, "highest version to offer (1.0 .. 1.3)");
  p->add_option("--upstream-proxy", opt.upstream_proxy,
                "connect through http://[USER:PASS@]HOST:PORT (CONNECT) or socks5://[USER:PASS@]HOST:PORT");
  p->add_option("--ciphers", opt.ciphers, "TLS <= 1.2 cipher list to offer (OpenSSL syntax)");
  p->add_option("--ciphersuites", opt.ciphersuites, "TLS 1.3 suites to offer");
  p->add_option("--groups", opt.groups, "groups to offer, e.g. X25519:P-256");
  p->add_option("--upstream-ca", opt.upstream_ca, "verify the server against this CA file (default: system store)");
  p->add_option("--timeout", opt.timeout_s, "seconds for each connect and each handshake")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  p->add_option("--concurrency", opt.concurrency, "scan handshakes at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  p->add_option("--format", opt.format, "trace shape: default, jsse, openssl")
      ->capture_default_str()
      ->check(CLI::IsMember({"default", "jsse", "openssl"}));
  return p;
}

namespace {

// The scan after the handshake: its own tracer, whose events only the scan reads.
Json runScan(Runner& runner, asio::io_context& io, const std::vector<std::string>& what, const ScanOffer& offer) {
  trace::Tracer scan_tracer(trace::kHandshake | trace::kKeyExchange);
  auto scan_collector = std::make_shared<Collector>();
  scan_tracer.addSink(scan_collector);
  runner.scan_tracer = &scan_tracer;
  runner.scan_collector = scan_collector.get();
  auto results = std::make_shared<ScanResults>();
  const auto started = std::chrono::steady_clock::now();
  const std::uint64_t first_id = runner.next_id;
  io.restart();
  startScan(runner, what, offer, results);
  io.run();
  Json scan = scanReport(*results, what);
  scan.set("handshakes", static_cast<long long>(runner.next_id - first_id));
  scan.set("seconds",
           trace::timingMs(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count()));
  runner.scan_tracer = nullptr;
  runner.scan_collector = nullptr;
  return scan;
}

session::ProbeSpec probeSpecOf(const ProbeOptions& opt, const config::HostPort& target) {
  session::ProbeSpec spec;
  spec.target = target;
  spec.sni = opt.no_sni ? std::string() : !opt.sni.empty() ? opt.sni : tls::isIpAddress(target.host) ? "" : target.host;
  spec.alpn = opt.alpn;
  return spec;
}

// The handshake's trace: the text on stdout (as --log prints it), the events file, the policy.
// (stdout carries one thing: the JSON report, or the events, or the trace and the text report.)
std::shared_ptr<PolicySink> addProbeSinks(const ProbeOptions& opt, trace::Tracer& tracer,
                                          const std::shared_ptr<Collector>& collector,
                                          std::optional<config::Policy>& policy) {
  std::vector<std::shared_ptr<trace::Sink>> added;
  trace::TextFormat format = trace::TextFormat::Default;
  (void)trace::parseTextFormat(opt.format, format);
  if (!opt.json && opt.events_file != "-") added.push_back(std::make_shared<sinks::TextSink>("-", format));
  if (!opt.events_file.empty()) added.push_back(std::make_shared<sinks::JsonLinesSink>(opt.events_file));
  for (const auto& s : added) tracer.addSink(s);
  tracer.addSink(collector);
  if (!policy) return nullptr;
  auto policy_sink = std::make_shared<PolicySink>(std::move(*policy), added, true);
  tracer.addSink(policy_sink);
  return policy_sink;
}

struct Handshakes {
  std::shared_ptr<tls::SavedSession> saved = std::make_shared<tls::SavedSession>();
  std::vector<Json> first, second;
  bool resumed_tried = false;
};

// The handshake, then one resumption attempt with the session (ID or ticket) it left.
Handshakes handshakeTwice(Runner& runner, asio::io_context& io, const ScanOffer& offer, const session::ProbeSpec& spec,
                          trace::Tracer& tracer, Collector& collector) {
  Handshakes hs;
  session::ProbeSpec first = spec;
  first.save = hs.saved;
  first.ticket_wait_s = 1.0;
  runner.run(offer, first, tracer, collector, [&](std::uint64_t, std::vector<Json> evs) {
    hs.first = std::move(evs);
    if (!hs.saved->saved()) return;
    session::ProbeSpec again = spec;
    again.resume = hs.saved;
    hs.resumed_tried = true;
    runner.run(offer, again, tracer, collector,
               [&](std::uint64_t, std::vector<Json> evs2) { hs.second = std::move(evs2); });
  });
  io.run();
  return hs;
}

}  // namespace

int runProbeCommand(const ProbeOptions& opt) {
  std::string err;
  const auto target = config::parseHostPort(opt.target, err);
  if (!target) {
    spdlog::error("probe target '{}': {}", opt.target, err);
    return 2;
  }
  std::optional<config::Policy> policy;
  if (!opt.policy_file.empty()) {
    policy = config::readPolicyFile(opt.policy_file, err);
    if (!policy) {
      spdlog::error("{}", err);
      return 2;
    }
  }
  config::ProxyConfig cfg;
  cfg.connect_timeout_s = cfg.handshake_timeout_s = opt.timeout_s;
  std::optional<config::UpstreamProxy> upstream_proxy;
  if (!opt.upstream_proxy.empty()) {
    cfg.upstream_proxy = opt.upstream_proxy;
    if (!(upstream_proxy = config::upstreamProxyOf(cfg, err))) {
      spdlog::error("{}", err);
      return 2;
    }
  }
  const session::ProbeSpec spec = probeSpecOf(opt, *target);
  const ScanOffer offer{opt.tls_min, opt.tls_max, opt.ciphers, opt.ciphersuites, opt.groups, ""};

  trace::Tracer tracer(trace::kDefaultCategories);
  auto collector = std::make_shared<Collector>();
  const auto policy_sink = addProbeSinks(opt, tracer, collector, policy);

  analysis::PrimeCache primes;
  tls::CertSummaryCache certs;
  net::Services base;
  base.cfg = &cfg;
  base.primes = &primes;
  base.certs = &certs;
  asio::io_context io;
  // Name lookups and safe-prime tests run off the io thread, as in the proxy (destroyed before
  // the io_context their results are posted to).
  net::ResolverPool resolver(1, 4, 64);
  net::PrimePool prime_pool(1, 1, 16);
  base.resolver = &resolver;
  base.prime_pool = &prime_pool;
  if (upstream_proxy) base.upstream_proxy = &*upstream_proxy;
  Runner runner(io, base, spec, opt.upstream_ca, opt.concurrency);

  const Handshakes hs = handshakeTwice(runner, io, offer, spec, tracer, *collector);
  Json report = probeReport(target->str(), spec, hs.first, hs.resumed_tried ? &hs.second : nullptr, *hs.saved);
  if (!opt.scan.empty()) report.set("scan", runScan(runner, io, opt.scan, offer));
  tracer.flush();
  bool failed = !report.find("ok")->asBool();
  if (policy_sink && policy_sink->engine()) {
    report.set("policy", policyReport(*policy_sink->engine(), opt.policy_file));
    failed = failed || policy_sink->engine()->violations() > 0;
  }
  const std::string out = opt.json ? report.dump() + "\n" : renderProbeReport(report);
  std::FILE* to = !opt.json && opt.events_file == "-" ? stderr : stdout;
  std::fwrite(out.data(), 1, out.size(), to);
  std::fflush(to);
  return failed ? 1 : 0;
}

}  // namespace tlstrace::app

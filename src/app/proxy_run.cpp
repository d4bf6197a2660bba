// The proxy command's composition: every concrete type of a proxy run is put together here, in
// the order their lifetimes need (the trace writer ends before the outputs it writes to; the
// capture and the state watch end before the outputs are finished).
#include "app/proxy_run.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "analysis/kex.h"
#include "app/ca_run.h"
#include "app/policy_run.h"
#include "config/policy.h"
#include "config/upstream_proxy.h"
#include "net/capture.h"
#include "net/services.h"
#include "net/tcp_state_watch.h"
#include "net/ui_server.h"
#include "pki/audit.h"
#include "pki/ca.h"
#include "pki/ca_export.h"
#include "pki/forge.h"
#include "report/live.h"
#include "session/passthrough.h"
#include "sinks/console.h"
#include "sinks/output.h"
#include "sinks/pcapng.h"
#include "sinks/sinks.h"
#include "tls/cert_summary.h"
#include "tls/client_cert.h"
#include "tls/context.h"
#include "tls/engine.h"
#include "trace/event.h"
#include "trace/text.h"

namespace tlstrace::app {

namespace {

// Each proxied connection holds two descriptors, in the descriptor table of its io thread (each
// io thread has its own: the limit applies per table). Raise the soft limit to what one thread's
// share of --max-connections needs (and the hard limit too where we may: CAP_SYS_RESOURCE). Where
// the limit stays below it, lower the connection limit to what fits and say so: connections
// beyond it are then refused (conn.refused, 503) instead of failing half-way when a socket cannot
// be opened.
void raiseFileLimit(std::size_t& max_connections, std::size_t tables) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  constexpr rlim_t kReserve = 64;  // the listener, the trace files, the CA, stdio, the reactor
  const rlim_t want = static_cast<rlim_t>(config::connectionsPerThread(max_connections, tables)) * 2 + kReserve;
  const rlim_t before = rl.rlim_cur;
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
    rlimit raised{want, want};
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  if (rl.rlim_cur < want) {
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? want : std::min(want, rl.rlim_max);
    (void)setrlimit(RLIMIT_NOFILE, &rl);
    (void)getrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur != before) spdlog::info("raised the open-file limit from {} to {}", before, rl.rlim_cur);
  if (rl.rlim_cur < want) {
    const std::size_t per_thread =
        rl.rlim_cur > kReserve + 2 ? static_cast<std::size_t>(rl.rlim_cur - kReserve) / 2 : 1;
    const std::size_t fits = config::maxConnectionsFitting(per_thread, tables);
    const std::string per = tables > 1 ? " in each of " + std::to_string(tables) + " io threads" : std::string{};
    spdlog::warn("the open-file limit ({}{}) holds {} proxied connections: --max-connections {} lowered to {}",
                 rl.rlim_cur, per, fits, max_connections, fits);
    max_connections = fits;
  }
}

// Mutual TLS: every configured client certificate is read (and its key checked) before the proxy
// starts; per-host rules first, in order, the default last.
std::vector<tls::ClientIdentity> loadClientIdentities(const config::ProxyConfig& cfg) {
  std::vector<tls::ClientIdentity> ids;
  try {
    for (const auto& text : cfg.client_cert_rules) {
      std::string err;
      const auto rule = config::parseClientCertRule(text, err);  // (validated already)
      if (!rule) throw config::ConfigError(err);
      ids.push_back(tls::loadClientIdentity(rule->cert, rule->key));
      ids.back().host = rule->host;
      ids.back().source = "--upstream-client-cert-for " + rule->host;
    }
    if (!cfg.upstream_client_cert.empty()) {
      ids.push_back(tls::loadClientIdentity(cfg.upstream_client_cert, cfg.upstream_client_key));
      ids.back().source = "--upstream-client-cert";
    }
  } catch (const tls::OpensslError& e) {
    throw config::ConfigError(e.what());  // a configuration mistake: exit 2
  }
  return ids;
}

// --ready-file: the listening address, written whole (a temporary file renamed into place) once
// the proxy accepts, so a CI job can wait for the file and read the port of `-l 127.0.0.1:0`.
void writeReadyFile(const std::string& path, const std::string& addr) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  const bool ok = f && std::fprintf(f, "%s\n", addr.c_str()) > 0 && std::fclose(f) == 0 &&
                  std::rename(tmp.c_str(), path.c_str()) == 0;
  if (!ok) spdlog::error("cannot write the ready file {}", path);
}

// The end of a run: every output flushed within kOutputGrace (a stalled one must not hold the
// exit), then the summary and one line per output that lost anything. Exit status 3 when any did.
constexpr auto kOutputGrace = std::chrono::seconds(5);

int finishOutputs(trace::Tracer& tracer, sinks::OutputMonitor& outputs, int rc, const std::function<void()>& summary) {
  if (!tracer.flushFor(kOutputGrace)) {
    const auto st = tracer.stats();
    spdlog::error("gave up on the outputs after {} s: {} queued events were not written (an output is stalled)",
                  kOutputGrace.count(), st.queued);
    for (const auto& line : outputs.lossLines()) spdlog::error("lost: {}", line);
    if (st.dropped > 0) spdlog::error("lost: {} events dropped while the trace writer was stalled", st.dropped);
    std::fflush(nullptr);
    std::_Exit(3);  // the writer thread is stuck in a write: no destructor may wait for it
  }
  outputs.abandonHeld();                           // what a FIFO never took is lost...
  (void)tracer.flushFor(std::chrono::seconds(1));  // ...and reported in trace.dropped
  summary();
  const auto st = tracer.stats();
  if (st.waits > 0)
    spdlog::warn("trace writer: {} events written; connections waited for it {} times ({} ms in all)", st.events,
                 st.waits, st.wait_micros / 1000);
  const auto lines = outputs.lossLines();
  for (const auto& line : lines) spdlog::error("lost: {}", line);
  if (st.dropped > 0)
    spdlog::error("lost: {} events dropped before any output (the trace writer was stalled for over {} s)", st.dropped,
                  std::chrono::duration_cast<std::chrono::seconds>(trace::Tracer::kStallAfter).count());
  if (lines.empty() && st.dropped == 0) return rc;
  return rc == 0 ? 3 : rc;
}

// --tcp-states: the kernel's transitions through eBPF, or (--tcp-states-source, and by default when
// eBPF is off and --capture is on) derived by the capture thread from each leg's segments. Returns
// the eBPF watch (none when not used) and whether the capture derives them.
std::pair<std::unique_ptr<net::TcpStateWatch>, bool> startTcpStates(const config::ProxyConfig& cfg,
                                                                    trace::Tracer& tracer) {
  const std::string& src = cfg.tcp_states_source;
  std::unique_ptr<net::TcpStateWatch> watch;
  std::string why;
  if (src != "capture") watch = net::TcpStateWatch::start(tracer, why);
  const bool from_capture = src == "capture" || src == "both" || (src == "auto" && !watch && cfg.capture);
  if (from_capture && !cfg.capture) spdlog::warn("--tcp-states-source {}: needs --capture; no capture, no states", src);
  if (!watch && src != "capture") {
    if (from_capture && cfg.capture) spdlog::info("--tcp-states: from the captured segments (eBPF: {})", why);
    else spdlog::warn("--tcp-states: off: {}", why);  // the proxy runs on without them
  }
  return {std::move(watch), from_capture && cfg.capture};
}

// The TLS side of a run, made before anything listens: the CA, the forger of leaf certificates,
// both legs' contexts and the client certificates for servers that ask for one. Not movable: the
// forger refers to the CA.
struct TlsSetup {
  explicit TlsSetup(const config::ProxyConfig& cfg)
      : ca(loadCaFor(cfg, true)),
        forger(ca, cfg.cert_cache, cfg.leaf_key == "rsa" ? pki::Forger::KeyType::Rsa : pki::Forger::KeyType::Ecdsa),
        client_ctx(
            tls::makeClientFacingContext({cfg.client_tls.min_version, cfg.client_tls.max_version,
                                          cfg.client_tls.ciphers, cfg.client_tls.ciphersuites, cfg.client_tls.groups},
                                         cfg.dhparam)),
        upstream_ctx(
            tls::makeUpstreamContext({cfg.upstream_tls.min_version, cfg.upstream_tls.max_version,
                                      cfg.upstream_tls.ciphers, cfg.upstream_tls.ciphersuites, cfg.upstream_tls.groups},
                                     cfg.upstream_ca, cfg.insecure)),
        client_identities(loadClientIdentities(cfg)) {
    if (cfg.request_client_cert) tls::requestClientCertificates(client_ctx.get(), cfg.client_ca);
  }
  TlsSetup(const TlsSetup&) = delete;
  TlsSetup& operator=(const TlsSetup&) = delete;

  pki::CertAuthority ca;
  pki::Forger forger;
  tls::SslCtxPtr client_ctx;
  tls::SslCtxPtr upstream_ctx;
  std::vector<tls::ClientIdentity> client_identities;
};

// --policy and --audit-clients, read before anything starts: a CI job with a broken policy or
// scenario list fails at once (false: exit 2). A policy's checks read the key exchange and the
// certificate verdict, so their events are written too.
struct Checks {
  std::optional<config::Policy> policy;
  std::unique_ptr<pki::AuditPlan> audit_plan;
};

bool loadChecks(const config::ProxyConfig& cfg, unsigned& categories, Checks& out) {
  if (!cfg.policy_file.empty()) {
    std::string error;
    out.policy = config::readPolicyFile(cfg.policy_file, error);
    if (!out.policy) {
      for (std::size_t at = 0, nl; at <= error.size(); at = nl + 1) {
        nl = error.find('\n', at);
        if (nl == std::string::npos) nl = error.size();
        spdlog::error("{}", std::string_view(error).substr(at, nl - at));
      }
      return false;
    }
    categories |= trace::kKeyExchange | trace::kTrust;
  }
  if (!cfg.audit_clients.empty()) {
    std::string error;
    auto scenarios = pki::parseAuditScenarios(cfg.audit_clients, error);
    if (!scenarios) {
      spdlog::error("--audit-clients: {}", error);
      return false;
    }
    out.audit_plan = std::make_unique<pki::AuditPlan>(std::move(*scenarios));
  }
  return true;
}

// Where the run writes: the trace sinks (text, console, events, the live page, the policy) and
// the io threads' own outputs (key log, pcapng), each watched for write failures.
struct Outputs {
  sinks::OutputMonitor monitor;
  std::shared_ptr<sinks::ConsoleSink> console;
  std::shared_ptr<report::LiveSink> live;
  std::unique_ptr<net::UiServer> ui;
  std::shared_ptr<PolicySink> policy_sink;
  std::string ca_path;
  std::string keylog_path;
  std::unique_ptr<sinks::KeylogSink> keylog;
  std::unique_ptr<sinks::PcapngSink> pcap;
};

// False (exit 2) when the live page cannot listen.
bool openOutputs(const config::ProxyConfig& cfg, const pki::CertAuthority& ca, trace::Tracer& tracer, Checks& checks,
                 Outputs& out) {
  trace::TextFormat format = trace::TextFormat::Default;
  (void)trace::parseTextFormat(cfg.format, format);  // validated by the command line
  // The full trace only where asked for (--log FILE, -v); the console shows one line per connection.
  std::vector<std::shared_ptr<trace::Sink>> added;  // what a policy's violations are written to
  auto addSink = [&](std::shared_ptr<trace::Sink> s) {
    added.push_back(s);
    tracer.addSink(std::move(s));
  };
  if (!cfg.log_file.empty()) {
    auto text = std::make_shared<sinks::TextSink>(cfg.log_file, format, cfg.log_secrets);
    out.monitor.add(text->output());
    addSink(text);
  }
  if (cfg.verbose) addSink(std::make_shared<sinks::TextSink>("", format));  // "" = stderr
  out.ca_path = ca.cert_path.empty() ? cfg.ca_cert : ca.cert_path;
  if (!cfg.quiet) addSink(out.console = std::make_shared<sinks::ConsoleSink>(out.ca_path));
  if (!cfg.events_file.empty()) {
    auto events = std::make_shared<sinks::JsonLinesSink>(cfg.events_file, cfg.log_secrets);
    out.monitor.add(events->output());
    addSink(events);
  }
  // --ui: the live page; its sink only keeps connections in memory, the page server reads them.
  if (cfg.ui) {
    addSink(out.live = std::make_shared<report::LiveSink>(cfg.ui_keep));
    out.ui = std::make_unique<net::UiServer>(*cfg.ui, cfg.allow_remote, out.live);
    std::string error;
    const std::string at = out.ui->start(error);
    if (at.empty()) {
      spdlog::error("{}", error);
      return false;
    }
    spdlog::info("live page: http://{}/", at);
  }
  if (checks.policy || checks.audit_plan)
    tracer.addSink(out.policy_sink = std::make_shared<PolicySink>(std::move(checks.policy), added, !out.console));
  out.keylog_path = cfg.keylog_file;
  if (out.keylog_path.empty())
    if (const char* env = std::getenv("SSLKEYLOGFILE"); env && *env) out.keylog_path = env;
  if (!out.keylog_path.empty())
    out.monitor.add((out.keylog = std::make_unique<sinks::KeylogSink>(out.keylog_path))->output());
  if (!cfg.pcap_file.empty())
    out.monitor.add((out.pcap = cfg.capture ? std::make_unique<sinks::PcapngSink>(cfg.pcap_file, net::kCaptureLinktype)
                                            : std::make_unique<sinks::PcapngSink>(cfg.pcap_file))
                        ->output());
  return true;
}

// The start lines once the proxy listens: where, how to try it, what it writes, and the warning
// an open relay deserves.
void announce(const config::ProxyConfig& cfg, const ProxyBuild& build, const Outputs& out, const std::string& addr) {
  spdlog::info("tlstrace {} ({}) listening on {} in {} mode{}", build.version, build.build, addr,
               config::modeName(cfg.mode),
               cfg.mode == config::Mode::Reverse ? " -> " + cfg.upstream->str() : std::string{});
  spdlog::info("CA certificate: {}", out.ca_path);
  if (cfg.mode == config::Mode::Explicit)
    spdlog::info("try: curl -x http://{} --cacert {} https://example.com/", addr, out.ca_path);
  else if (cfg.mode == config::Mode::Transparent)
    spdlog::info("redirect clients' TCP traffic to port {} (nft/iptables REDIRECT or TPROXY: docs/transparent.md)",
                 cfg.listen.port);
  else if (cfg.mode == config::Mode::Socks5)
    spdlog::info("try: curl --socks5-hostname {} --cacert {} https://example.com/", addr, out.ca_path);
  else spdlog::info("try: curl --cacert {} https://{}/", out.ca_path, addr);
  if (out.keylog) spdlog::info("key log: {}", out.keylog_path);
  if (out.pcap) spdlog::info("capture: {} (holds the TLS secrets; Wireshark decrypts it as is)", cfg.pcap_file);
  if (cfg.allow_remote && cfg.proxy_auth.empty() &&
      (cfg.mode == config::Mode::Explicit || cfg.mode == config::Mode::Socks5))
    spdlog::warn(
        "WARNING: --allow-remote without --proxy-auth: ANYONE who can reach {} can relay through this proxy to "
        "any server it reaches (add --proxy-auth USER:PASSWORD)",
        addr);
  if (!cfg.ready_file.empty()) writeReadyFile(cfg.ready_file, addr);
}

// What every connection shares (the caches, the TLS contexts, the outputs it writes itself).
void fillServices(net::Services& svc, const config::ProxyConfig& cfg, TlsSetup& tls, trace::Tracer& tracer,
                  Outputs& out) {
  if (!cfg.proxy_auth.empty()) svc.expected_proxy_auth = "Basic " + config::base64(cfg.proxy_auth);
  svc.cfg = &cfg;
  svc.tracer = &tracer;
  svc.forger = &tls.forger;
  svc.tap = out.pcap.get();
  svc.client_ctx = tls.client_ctx.get();
  svc.upstream_ctx = tls.upstream_ctx.get();
  if (!tls.client_identities.empty()) svc.client_identities = &tls.client_identities;
  svc.ca_page = {pki::certificatePem(tls.ca.cert.get()), pki::certificateDer(tls.ca.cert.get()),
                 pki::fingerprintSha256(tls.ca.cert.get()), pki::subjectLine(tls.ca.cert.get())};
  if (out.keylog) svc.keylog = [k = out.keylog.get()](std::string_view line) { k->writeLine(line); };
  svc.warn = [](const std::string& m) { spdlog::warn("{}", m); };
  svc.reopen = [&monitor = out.monitor] {
    spdlog::info("SIGHUP: reopening the output files");
    monitor.reopenAll();
  };
  svc.own_addresses = net::interfaceAddresses();
}

// The exit summary's lines on the console: the run's totals and the files it wrote.
void printSummary(const config::ProxyConfig& cfg, const Outputs& out) {
  std::vector<std::pair<std::string, std::string>> files{{"CA certificate", out.ca_path}};
  if (!cfg.log_file.empty()) files.emplace_back("trace", cfg.log_file == "-" ? "stdout" : cfg.log_file);
  if (!cfg.events_file.empty()) files.emplace_back("events", cfg.events_file == "-" ? "stdout" : cfg.events_file);
  if (out.keylog) files.emplace_back("key log", out.keylog_path);
  if (out.pcap) files.emplace_back("capture", cfg.pcap_file);
  const std::string summary = sinks::renderExitSummary(out.console->totals(), files);
  for (std::size_t at = 0, nl; (nl = summary.find('\n', at)) != std::string::npos; at = nl + 1)
    spdlog::info("{}", std::string_view(summary).substr(at, nl - at));
}

struct Served {
  int rc = 0;
  bool listened = false;  // no exit summary when the proxy never listened (e.g. the port is taken)
};

// From the shared services to the end of the listener; the capture and the state watch end
// before this returns (their threads emit events, which must reach the outputs).
Served serve(const config::ProxyConfig& cfg, const ProxyBuild& build, const Checks& checks, TlsSetup& tls,
             trace::Tracer& tracer, Outputs& out, net::StopRequest& stop, bool own_fd_tables) {
  analysis::PrimeCache primes;
  tls::CertSummaryCache certs;
  net::Services svc;
  svc.primes = &primes;
  svc.certs = &certs;
  fillServices(svc, cfg, tls, tracer, out);
  svc.own_fd_tables = own_fd_tables;
  std::unique_ptr<pki::AuditCerts> audit_certs;
  if (checks.audit_plan) {
    audit_certs = std::make_unique<pki::AuditCerts>(tls.ca);
    svc.audit_certs = audit_certs.get();
    svc.audit_plan = checks.audit_plan.get();
  }
  const auto passthrough = session::Passthrough::fromConfig(cfg);
  svc.passthrough = passthrough.get();
  std::string proxy_error;  // (validate() has checked it)
  const auto upstream_proxy = cfg.upstream_proxy.empty() ? std::nullopt : config::upstreamProxyOf(cfg, proxy_error);
  if (upstream_proxy) svc.upstream_proxy = &*upstream_proxy;
  svc.stop = &stop;
  std::unique_ptr<net::TcpStateWatch> tcp_states;
  bool states_from_capture = false;
  if (cfg.tcp_states) std::tie(tcp_states, states_from_capture) = startTcpStates(cfg, tracer);
  svc.tcp_states = tcp_states.get();
  std::unique_ptr<net::PacketCapture> capture;  // ends after the proxy (its thread writes to the tracer)
  if (cfg.capture) {
    std::string error;
    if (!(capture = net::openCapture(tracer, out.pcap.get(), {}, error, states_from_capture))) {
      spdlog::error("{}", error);
      return {2, false};
    }
    svc.capture = capture.get();
  }
  Served s;
  s.rc = net::runProxy(svc, [&](const std::string& addr) {
    s.listened = true;
    if (capture) capture->listenPort(static_cast<std::uint16_t>(std::stoul(addr.substr(addr.rfind(':') + 1))));
    announce(cfg, build, out, addr);
  });
  svc.tcp_states = nullptr;
  tcp_states.reset();  // its thread emits events: it ends before the outputs are finished
  capture.reset();     // its last segments go to the tracer before the outputs finish
  return s;
}

}  // namespace

int runProxyCommand(const config::ProxyConfig& options, const ProxyBuild& build) {
  config::ProxyConfig cfg = options;  // the connection limit may be lowered to the fd limit
  // A reader that goes away (`--events - | head`) is a write error to count, not a reason to die;
  // a file over RLIMIT_FSIZE is EFBIG, likewise.
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGXFSZ, SIG_IGN);
  unsigned categories = 0;
  std::string bad;
  if (!trace::parseCategories(cfg.trace, categories, bad)) {
    spdlog::error("unknown --trace category '{}' (use tcp, handshake, keyexchange, trust, keys, record, data, all)",
                  bad);
    return 2;
  }
  TlsSetup tls(cfg);
  Checks checks;
  if (!loadChecks(cfg, categories, checks)) return 2;
  // Owned here so that it can end first (see stop_tracer_first below).
  auto tracer_owner = std::make_unique<trace::Tracer>(categories);
  trace::Tracer& tracer = *tracer_owner;
  tracer.onBackpressure([](const trace::Tracer::Stats& st) {
    spdlog::warn(
        "trace output cannot keep up: connections waited for the trace writer {} times ({} ms in all); "
        "none is dropped unless it stalls for over a second",
        st.waits, st.wait_micros / 1000);
  });
  if (build.release_thread_cache) tracer.onIdle(build.release_thread_cache);
  Outputs out;
  if (!openOutputs(cfg, tls.ca, tracer, checks, out)) return 2;
  const auto started = std::chrono::steady_clock::now();
  net::StopRequest stop;
  if (cfg.on_output_error == "stop")
    out.monitor.onFailure([&stop, said = std::make_shared<std::once_flag>()] {
      std::call_once(*said, [] {
        spdlog::error(
            "stopping: an output failed (--on-output-error stop; 'continue' keeps proxying and counts "
            "the losses)");
      });
      stop.request();
    });
  tracer.onPassEnd([&monitor = out.monitor](std::vector<trace::Event>& extra) { monitor.appendReports(extra); });
  // The writer thread uses the outputs, the key log, the capture and the stop request until the
  // tracer ends: it must end before they do, whichever way this function returns (they were
  // declared after it, so they would go first).
  struct StopTracerFirst {
    std::unique_ptr<trace::Tracer>& t;
    ~StopTracerFirst() { t.reset(); }
  } stop_tracer_first{tracer_owner};
  if (out.keylog || out.pcap || (categories & trace::kKeys)) {
    tls::TlsEngine::reportSecrets(tls.client_ctx.get());
    tls::TlsEngine::reportSecrets(tls.upstream_ctx.get());
  }
  const std::size_t io_threads = config::ioThreads(cfg);
  const bool own_fd_tables = io_threads > 1 && net::threadsCanOwnFdTables();
  raiseFileLimit(cfg.max_connections, own_fd_tables ? io_threads : 1);
  const Served served = serve(cfg, build, checks, tls, tracer, out, stop, own_fd_tables);
  if (!cfg.ready_file.empty() && served.listened)
    std::remove(cfg.ready_file.c_str());  // a stale one would mislead the next job
  if (out.ui) out.ui->stop();
  const int status = finishOutputs(tracer, out.monitor, served.rc, [&] {
    if (out.console && served.listened) printSummary(cfg, out);
  });
  if (out.policy_sink && served.listened) {
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const bool written = writePolicyReports(out.policy_sink->engine(), out.policy_sink->audit(), cfg.junit_file,
                                            cfg.sarif_file, secs, build.version);
    if (status == 0 && out.policy_sink->failed()) return 1;  // a rule failed or a client trusted a broken certificate
    if (status == 0 && !written) return 1;
  }
  return status;
}

}  // namespace tlstrace::app

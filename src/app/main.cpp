// Composition root: the command line (CLI11) turned into configuration, and the one place that
// knows every concrete type.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>
#ifdef TLSTRACE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <mutex>
#include <optional>
#include <tuple>
#include <utility>

#include "analysis/kex.h"
#include "app/ca_run.h"
#include "app/cli.h"
#include "app/policy_run.h"
#include "app/probe_run.h"
#include "app/report_run.h"
#include "config/config.h"
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
#include "session/passthrough.h"
#include "sinks/console.h"
#include "sinks/convert.h"
#include "sinks/output.h"
#include "sinks/pcapng.h"
#include "sinks/sinks.h"
#include "tls/cert_summary.h"
#include "tls/client_cert.h"
#include "tls/context.h"
#include "tls/engine.h"
#include "trace/event.h"
#include "trace/text.h"

using namespace tlstrace;

namespace {

constexpr const char* kVersion = "0.1.0";

// What the binary was built with, for --version and the start line (bug reports, benchmarks).
std::string buildInfo() {
  std::string info = tls::libraryVersion();
#ifdef TLSTRACE_JEMALLOC
  const char* v = nullptr;
  std::size_t len = sizeof v;
  info += ", jemalloc";
  if (mallctl("version", &v, &len, nullptr, 0) == 0 && v) {
    const std::string_view ver(v);  // "5.3.0-0-g<commit>"
    info += ' ';
    info += ver.substr(0, ver.find('-'));
  }
#else
  info += ", system malloc";
#endif
  return info;
}

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

int runProxyCommand(const config::ProxyConfig& options) {
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
  pki::CertAuthority ca = app::loadCaFor(cfg, true);
  pki::Forger forger(ca, cfg.cert_cache,
                     cfg.leaf_key == "rsa" ? pki::Forger::KeyType::Rsa : pki::Forger::KeyType::Ecdsa);
  tls::SslCtxPtr client_ctx =
      tls::makeClientFacingContext({cfg.client_tls.min_version, cfg.client_tls.max_version, cfg.client_tls.ciphers,
                                    cfg.client_tls.ciphersuites, cfg.client_tls.groups},
                                   cfg.dhparam);
  tls::SslCtxPtr upstream_ctx =
      tls::makeUpstreamContext({cfg.upstream_tls.min_version, cfg.upstream_tls.max_version, cfg.upstream_tls.ciphers,
                                cfg.upstream_tls.ciphersuites, cfg.upstream_tls.groups},
                               cfg.upstream_ca, cfg.insecure);
  if (cfg.request_client_cert) tls::requestClientCertificates(client_ctx.get(), cfg.client_ca);
  const std::vector<tls::ClientIdentity> client_identities = loadClientIdentities(cfg);

  // A policy is read before anything starts: a CI job with a broken policy fails at once (exit 2).
  std::optional<config::Policy> policy;
  if (!cfg.policy_file.empty()) {
    std::string error;
    policy = config::readPolicyFile(cfg.policy_file, error);
    if (!policy) {
      for (std::size_t at = 0, nl; at <= error.size(); at = nl + 1) {
        nl = error.find('\n', at);
        if (nl == std::string::npos) nl = error.size();
        spdlog::error("{}", std::string_view(error).substr(at, nl - at));
      }
      return 2;
    }
    // The checks read the key exchange and the certificate verdict: their events are written too.
    categories |= trace::kKeyExchange | trace::kTrust;
  }
  // --audit-clients: the scenarios are checked (exit 2) and their keys made before anything starts.
  std::unique_ptr<pki::AuditPlan> audit_plan;
  if (!cfg.audit_clients.empty()) {
    std::string error;
    auto scenarios = pki::parseAuditScenarios(cfg.audit_clients, error);
    if (!scenarios) {
      spdlog::error("--audit-clients: {}", error);
      return 2;
    }
    audit_plan = std::make_unique<pki::AuditPlan>(std::move(*scenarios));
  }
  // Owned here so that it can end first (see stop_tracer_first below).
  auto tracer_owner = std::make_unique<trace::Tracer>(categories);
  trace::Tracer& tracer = *tracer_owner;
  tracer.onBackpressure([](const trace::Tracer::Stats& st) {
    spdlog::warn(
        "trace output cannot keep up: connections waited for the trace writer {} times ({} ms in all); "
        "none is dropped unless it stalls for over a second",
        st.waits, st.wait_micros / 1000);
  });
  trace::TextFormat format = trace::TextFormat::Default;
  (void)trace::parseTextFormat(cfg.format, format);  // validated by the command line
  // The full trace only where asked for (--log FILE, -v); the console shows one line per connection.
  sinks::OutputMonitor outputs;
  std::vector<std::shared_ptr<trace::Sink>> added;  // what a policy's violations are written to
  auto addSink = [&](std::shared_ptr<trace::Sink> s) {
    added.push_back(s);
    tracer.addSink(std::move(s));
  };
  if (!cfg.log_file.empty()) {
    auto text = std::make_shared<sinks::TextSink>(cfg.log_file, format, cfg.log_secrets);
    outputs.add(text->output());
    addSink(text);
  }
  if (cfg.verbose) addSink(std::make_shared<sinks::TextSink>("", format));  // "" = stderr
  const std::string ca_path = ca.cert_path.empty() ? cfg.ca_cert : ca.cert_path;
  std::shared_ptr<sinks::ConsoleSink> console;
  if (!cfg.quiet) addSink(console = std::make_shared<sinks::ConsoleSink>(ca_path));
  if (!cfg.events_file.empty()) {
    auto events = std::make_shared<sinks::JsonLinesSink>(cfg.events_file, cfg.log_secrets);
    outputs.add(events->output());
    addSink(events);
  }
  // --ui: the live page; its sink only keeps connections in memory, the page server reads them.
  std::shared_ptr<report::LiveSink> live;
  std::unique_ptr<net::UiServer> ui;
  if (cfg.ui) {
    addSink(live = std::make_shared<report::LiveSink>(cfg.ui_keep));
    ui = std::make_unique<net::UiServer>(*cfg.ui, cfg.allow_remote, live);
    std::string error;
    const std::string at = ui->start(error);
    if (at.empty()) {
      spdlog::error("{}", error);
      return 2;
    }
    spdlog::info("live page: http://{}/", at);
  }
  std::shared_ptr<app::PolicySink> policy_sink;
  if (policy || audit_plan)
    tracer.addSink(policy_sink = std::make_shared<app::PolicySink>(std::move(policy), added, !console));
  const auto started = std::chrono::steady_clock::now();
  std::string keylog_path = cfg.keylog_file;
  if (keylog_path.empty())
    if (const char* env = std::getenv("SSLKEYLOGFILE"); env && *env) keylog_path = env;
  std::unique_ptr<sinks::KeylogSink> keylog;
  if (!keylog_path.empty()) outputs.add((keylog = std::make_unique<sinks::KeylogSink>(keylog_path))->output());

  std::unique_ptr<sinks::PcapngSink> pcap;
  if (!cfg.pcap_file.empty())
    outputs.add((pcap = cfg.capture ? std::make_unique<sinks::PcapngSink>(cfg.pcap_file, net::kCaptureLinktype)
                                    : std::make_unique<sinks::PcapngSink>(cfg.pcap_file))
                    ->output());
  net::StopRequest stop;
  if (cfg.on_output_error == "stop")
    outputs.onFailure([&stop, said = std::make_shared<std::once_flag>()] {
      std::call_once(*said, [] {
        spdlog::error(
            "stopping: an output failed (--on-output-error stop; 'continue' keeps proxying and counts "
            "the losses)");
      });
      stop.request();
    });
  tracer.onPassEnd([&outputs](std::vector<trace::Event>& out) { outputs.appendReports(out); });
  // The writer thread uses the outputs, the key log, the capture and the stop request until the
  // tracer ends: it must end before they do, whichever way this function returns (they were
  // declared after it, so they would go first).
  struct StopTracerFirst {
    std::unique_ptr<trace::Tracer>& t;
    ~StopTracerFirst() { t.reset(); }
  } stop_tracer_first{tracer_owner};
  if (keylog || pcap || (categories & trace::kKeys)) {
    tls::TlsEngine::reportSecrets(client_ctx.get());
    tls::TlsEngine::reportSecrets(upstream_ctx.get());
  }
  const std::size_t io_threads = config::ioThreads(cfg);
  const bool own_fd_tables = io_threads > 1 && net::threadsCanOwnFdTables();
  raiseFileLimit(cfg.max_connections, own_fd_tables ? io_threads : 1);
  analysis::PrimeCache primes;
  tls::CertSummaryCache certs;
  net::Services svc;
  svc.primes = &primes;
  svc.certs = &certs;
  svc.tap = pcap.get();
  if (!cfg.proxy_auth.empty()) svc.expected_proxy_auth = "Basic " + config::base64(cfg.proxy_auth);
  svc.cfg = &cfg;
  svc.tracer = &tracer;
  svc.forger = &forger;
  std::unique_ptr<pki::AuditCerts> audit_certs;
  if (audit_plan) {
    audit_certs = std::make_unique<pki::AuditCerts>(ca);
    svc.audit_certs = audit_certs.get();
    svc.audit_plan = audit_plan.get();
  }
  const auto passthrough = session::Passthrough::fromConfig(cfg);
  svc.passthrough = passthrough.get();
  svc.client_ctx = client_ctx.get();
  svc.upstream_ctx = upstream_ctx.get();
  if (!client_identities.empty()) svc.client_identities = &client_identities;
  std::string proxy_error;  // (validate() has checked it)
  const auto upstream_proxy = cfg.upstream_proxy.empty() ? std::nullopt : config::upstreamProxyOf(cfg, proxy_error);
  if (upstream_proxy) svc.upstream_proxy = &*upstream_proxy;
  svc.ca_page = {pki::certificatePem(ca.cert.get()), pki::certificateDer(ca.cert.get()),
                 pki::fingerprintSha256(ca.cert.get()), pki::subjectLine(ca.cert.get())};
  if (keylog) svc.keylog = [k = keylog.get()](std::string_view line) { k->writeLine(line); };
  svc.warn = [](const std::string& m) { spdlog::warn("{}", m); };
  svc.own_fd_tables = own_fd_tables;
  svc.stop = &stop;
  svc.reopen = [&outputs] {
    spdlog::info("SIGHUP: reopening the output files");
    outputs.reopenAll();
  };
  svc.own_addresses = net::interfaceAddresses();
  std::unique_ptr<net::TcpStateWatch> tcp_states;
  bool states_from_capture = false;
  if (cfg.tcp_states) std::tie(tcp_states, states_from_capture) = startTcpStates(cfg, tracer);
  svc.tcp_states = tcp_states.get();
  std::unique_ptr<net::PacketCapture> capture;  // ends after the proxy (its thread writes to the tracer)
  if (cfg.capture) {
    std::string error;
    if (!(capture = net::openCapture(tracer, pcap.get(), {}, error, states_from_capture))) {
      spdlog::error("{}", error);
      return 2;
    }
    svc.capture = capture.get();
  }
  bool listened = false;  // no exit summary when the proxy never started listening (e.g. the port is taken)
  const int rc = net::runProxy(svc, [&](const std::string& addr) {
    listened = true;
    if (capture) capture->listenPort(static_cast<std::uint16_t>(std::stoul(addr.substr(addr.rfind(':') + 1))));
    spdlog::info("tlstrace {} ({}) listening on {} in {} mode{}", kVersion, buildInfo(), addr,
                 config::modeName(cfg.mode),
                 cfg.mode == config::Mode::Reverse ? " -> " + cfg.upstream->str() : std::string{});
    spdlog::info("CA certificate: {}", ca_path);
    if (cfg.mode == config::Mode::Explicit)
      spdlog::info("try: curl -x http://{} --cacert {} https://example.com/", addr, ca_path);
    else if (cfg.mode == config::Mode::Transparent)
      spdlog::info("redirect clients' TCP traffic to port {} (nft/iptables REDIRECT or TPROXY: docs/transparent.md)",
                   cfg.listen.port);
    else if (cfg.mode == config::Mode::Socks5)
      spdlog::info("try: curl --socks5-hostname {} --cacert {} https://example.com/", addr, ca_path);
    else spdlog::info("try: curl --cacert {} https://{}/", ca_path, addr);
    if (keylog) spdlog::info("key log: {}", keylog_path);
    if (pcap) spdlog::info("capture: {} (holds the TLS secrets; Wireshark decrypts it as is)", cfg.pcap_file);
    if (cfg.allow_remote && cfg.proxy_auth.empty() &&
        (cfg.mode == config::Mode::Explicit || cfg.mode == config::Mode::Socks5))
      spdlog::warn(
          "WARNING: --allow-remote without --proxy-auth: ANYONE who can reach {} can relay through this proxy to "
          "any server it reaches (add --proxy-auth USER:PASSWORD)",
          addr);
    if (!cfg.ready_file.empty()) writeReadyFile(cfg.ready_file, addr);
  });
  svc.tcp_states = nullptr;
  tcp_states.reset();  // its thread emits events: it ends before the outputs are finished
  capture.reset();     // its last segments go to the tracer before the outputs finish
  if (!cfg.ready_file.empty() && listened)
    std::remove(cfg.ready_file.c_str());  // a stale one would mislead the next job
  if (ui) ui->stop();
  const int status = finishOutputs(tracer, outputs, rc, [&] {
    if (!console || !listened) return;
    std::vector<std::pair<std::string, std::string>> files{{"CA certificate", ca_path}};
    if (!cfg.log_file.empty()) files.emplace_back("trace", cfg.log_file == "-" ? "stdout" : cfg.log_file);
    if (!cfg.events_file.empty()) files.emplace_back("events", cfg.events_file == "-" ? "stdout" : cfg.events_file);
    if (keylog) files.emplace_back("key log", keylog_path);
    if (pcap) files.emplace_back("capture", cfg.pcap_file);
    const std::string summary = sinks::renderExitSummary(console->totals(), files);
    for (std::size_t at = 0, nl; (nl = summary.find('\n', at)) != std::string::npos; at = nl + 1)
      spdlog::info("{}", std::string_view(summary).substr(at, nl - at));
  });
  if (policy_sink && listened) {
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const bool written = app::writePolicyReports(policy_sink->engine(), policy_sink->audit(), cfg.junit_file,
                                                 cfg.sarif_file, secs, kVersion);
    if (status == 0 && policy_sink->failed()) return 1;  // a rule failed or a client trusted a broken certificate
    if (status == 0 && !written) return 1;
  }
  return status;
}

// `tlstrace convert EVENTS.jsonl --to text|keylog`: re-renders a recorded run. The text is the
// same renderer as the live trace, so the output matches what --log printed.
int runConvertCommand(const std::string& path, const std::string& to, const std::string& format_name) {
  std::FILE* in = path == "-" ? stdin : std::fopen(path.c_str(), "r");
  if (!in) {
    spdlog::error("cannot open {}: {}", path, std::strerror(errno));
    return 1;
  }
  trace::TextFormat format = trace::TextFormat::Default;
  (void)trace::parseTextFormat(format_name, format);
  sinks::EventsConverter conv(path == "-" ? "stdin" : path,
                              to == "keylog" ? sinks::EventsConverter::To::Keylog : sinks::EventsConverter::To::Text,
                              format);
  const int rc = conv.run(in, stdout, [](bool is_error, const std::string& m) {
    if (is_error) spdlog::error("{}", m);
    else spdlog::warn("{}", m);
  });
  if (in != stdin) std::fclose(in);
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  // First: OpenSSL takes its allocator only before its first allocation (were it too late,
  // OpenSSL would keep its default one: slower, not wrong).
  (void)tls::installOpensslAllocator();
  // Diagnostics go to stderr: stdout carries data (`convert`, `--events -`, `ca export`).
  spdlog::set_default_logger(spdlog::stderr_color_mt("tlstrace"));
  spdlog::set_pattern("tlstrace: %v");
  // Named, so that usage lines read "tlstrace ..." whatever path the binary was started by.
  CLI::App app{"tlstrace: a TLS and key-exchange debugging proxy", "tlstrace"};
  app.set_version_flag("--version", std::string("tlstrace ") + kVersion + " (" + buildInfo() + ")");
  app.require_subcommand(1);
  config::ProxyConfig cfg;
  app::CliState state;
  CLI::App* proxy = app::addProxyCommand(app, cfg, state);
  app::CaOptions ca_opt;
  CLI::App* ca = app::addCaCommand(app, cfg, ca_opt);
  std::string convert_in, convert_to = "text", convert_format = "default";
  CLI::App* convert = app.add_subcommand("convert", "re-render a recorded events file (JSON Lines)");
  convert->add_option("events", convert_in, "EVENTS.jsonl ('-' = stdin)")->required();
  convert->add_option("--to", convert_to, "text (the trace as --log prints it) or keylog (NSS key log)")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "keylog"}));
  convert->add_option("--format", convert_format, "text shape: default, jsse, openssl")
      ->capture_default_str()
      ->check(CLI::IsMember({"default", "jsse", "openssl"}));
  std::string check_policy, check_junit, check_sarif;
  std::vector<std::string> check_files;
  CLI::App* check = app.add_subcommand("check", "apply a policy to recorded events files (exit 1 if a rule failed)");
  check->add_option("--policy", check_policy, "policy file (TOML, [[rule]] tables; docs/policy.md)")->required();
  check->add_option("--junit", check_junit, "write the verdicts as JUnit XML to FILE");
  check->add_option("--sarif", check_sarif, "write the violations as SARIF 2.1.0 to FILE");
  check->add_option("events", check_files, "EVENTS.jsonl files, read in order")->required();
  app::ProbeOptions probe_opt;
  CLI::App* probe = app::addProbeCommand(app, probe_opt);
  std::vector<std::string> report_files;
  std::string report_out, report_title;
  CLI::App* report = app.add_subcommand("report", "recorded events files as one self-contained HTML page");
  report->add_option("events", report_files, "EVENTS.jsonl files ('-' = stdin)")->required();
  report->add_option("-o,--output", report_out, "the HTML file to write ('-' = stdout)")->required();
  report->add_option("--title", report_title, "the page's title (default: the input names)");
  try {
    app.parse(argc, argv);
    if (proxy->parsed()) app::applyConfigFiles(*proxy, state);
    app::finishConfig(cfg, state);
  } catch (const CLI::ParseError& e) {
    // --help/--version exit 0; every usage error exits 2, as a config that does not validate does
    // (CLI11's own codes, 105 and so on, would be one more thing to document and script against).
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    if (proxy->parsed()) {
      auto problems = cfg.validate();
      for (const auto& p : problems) spdlog::error("{}", p);
      if (!problems.empty()) return 2;
      for (const auto& w : cfg.warnings()) spdlog::warn("{}", w);
      if (cfg.quiet) spdlog::set_level(spdlog::level::warn);
      return runProxyCommand(cfg);
    }
    if (ca->parsed()) return app::runCaCommand(ca_opt, cfg);
    if (convert->parsed()) return runConvertCommand(convert_in, convert_to, convert_format);
    if (probe->parsed()) return app::runProbeCommand(probe_opt);
    if (check->parsed()) return app::runCheckCommand(check_policy, check_files, check_junit, check_sarif, kVersion);
    if (report->parsed()) return app::runReportCommand(report_files, report_out, report_title);
  } catch (const config::ConfigError& e) {
    spdlog::error("{}", e.what());
    return 2;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
  return 0;
}

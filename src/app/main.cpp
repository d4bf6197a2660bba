// The command line (CLI11) turned into configuration and handed to its command: the proxy
// (app/proxy_run.cpp, where a run's concrete types are put together), ca, convert, check, probe,
// report.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#ifdef TLSTRACE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>

#include "app/ca_run.h"
#include "app/cli.h"
#include "app/policy_run.h"
#include "app/probe_run.h"
#include "app/proxy_run.h"
#include "app/report_run.h"
#include "config/config.h"
#include "sinks/convert.h"
#include "tls/context.h"
#include "tls/engine.h"
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

// The trace writer frees what the io threads allocated and allocates little: jemalloc's cache of
// that thread only fills, and holds a few hundred KB that the io threads cannot reuse (the
// idle-connection benchmark's RSS). Given back whenever the writer has caught up.
std::function<void()> releaseThreadCache() {
#ifdef TLSTRACE_JEMALLOC
  return [] { (void)mallctl("thread.tcache.flush", nullptr, nullptr, nullptr, 0); };
#else
  return {};
#endif
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
      return app::runProxyCommand(cfg, {kVersion, buildInfo(), releaseThreadCache()});
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

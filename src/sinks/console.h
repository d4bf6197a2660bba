// The console view (issue [7]): one line per finished connection, like mitmdump's flow lines, and
// the totals behind the exit summary. The full trace goes to --log / --events instead.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sinks/sinks.h"
#include "trace/event.h"

namespace tlstrace::sinks {

// What the exit summary counts.
struct ConsoleTotals {
  std::uint64_t connections = 0, ok = 0, failed = 0;
  std::map<std::string, std::uint64_t> failures;  // by cause
  std::uint64_t weak = 0;                         // connections with a weak or broken key exchange
  std::vector<std::string> weak_examples;         // "#4 upstream DHE custom 1024-bit: ...", the first few
  std::uint64_t policy_violations = 0;            // policy.violation events (--policy)
  std::map<std::string, std::uint64_t> violated_rules;
};

// A pure renderer: events in, lines out. It keeps, per open connection, only the few facts the
// line needs (from conn.open, proxy.request, proxy.error, tls.error, tls.key_exchange,
// conn.summary) and writes the line at conn.close (or conn.refused). Only core events are needed;
// tls.key_exchange (category keyexchange) adds the key size and the reason of a weak rating.
class ConnectionLines {
 public:
  // `ca_path`: the CA certificate clients must trust, named when a client rejects the forged one.
  explicit ConnectionLines(std::string ca_path) : ca_path_(std::move(ca_path)) {}
  // Appends a whole line (ending in '\n') to `out` when `e` finished a connection.
  void add(const trace::Event& e, std::string& out);
  [[nodiscard]] const ConsoleTotals& totals() const { return totals_; }

  struct Leg {
    std::string version, cipher, group, kex, rating, reason;  // reason: why a weak rating
    std::int64_t bits = 0;
    bool have = false;        // the summary had this leg's handshake facts
    std::string certificate;  // upstream: "verified", "UNVERIFIED (…)", …
  };
  struct Conn {
    std::string client, target, sni;
    std::string cause, hint, alert_received, detail;
    bool error_from_other_leg = false;
    Leg legs[2];  // client, upstream
  };

 private:
  // What is kept while a connection is open, before its summary: most connections idle on this
  // alone, so it is small (the whole Conn is ~750 bytes; this ~150). The rest (errors, the
  // summary's facts) is made when the first of them arrives.
  struct Open {
    std::string client, target;
    std::int64_t bits[2] = {0, 0};  // per leg, from tls.key_exchange
    std::string reason[2];          // why a leg's key exchange is rated weak, from tls.key_exchange
    std::unique_ptr<Conn> more;
    Conn& conn() {
      if (!more) more = std::make_unique<Conn>();
      return *more;
    }
  };
  void finish(const trace::Event& e, Conn& c, std::string& out);
  bool addLine(const trace::Event& e, std::string& out);
  void note(const trace::Event& e, Open& o);
  std::string ca_path_;
  std::unordered_map<std::uint64_t, Open> open_;
  ConsoleTotals totals_;
};

// The line renderer on the tracer's writer thread, to stderr.
class ConsoleSink : public trace::Sink {
 public:
  explicit ConsoleSink(std::string ca_path) : out_("", stderr, "console"), lines_(std::move(ca_path)) {}
  void write(const trace::Event& e) override;
  void flush() override { out_.flush(); }
  // A copy, safe to take from another thread (main, after Tracer::flush()).
  [[nodiscard]] ConsoleTotals totals() const;

 private:
  BufferedFile out_;
  ConnectionLines lines_;
  mutable std::mutex mu_;  // guards lines_' totals against totals() from the main thread
};

// "HH:MM:SS.mmm #conn POLICY severity rule (leg host): message" for a policy.violation, else "".
[[nodiscard]] std::string violationLine(const trace::Event& e);
// "HH:MM:SS.mmm #conn AUDIT scenario: client ACCEPTED it / refused it (target): evidence".
[[nodiscard]] std::string auditLine(const trace::Event& e);
// "HH:MM:SS.mmm #conn PASSTHROUGH host for client from now on: ...; how to undo" for passthrough.auto.
[[nodiscard]] std::string passthroughLine(const trace::Event& e);

// The summary printed on exit: each line ends in '\n'. `outputs`: (what, path) of each output file.
[[nodiscard]] std::string renderExitSummary(const ConsoleTotals& t,
                                            const std::vector<std::pair<std::string, std::string>>& outputs);

}  // namespace tlstrace::sinks

// The data of the report page (`tlstrace report`, `proxy --ui`): events grouped into connections,
// each with one overview row (both legs' version, cipher, group, rating, certificate verdict,
// bytes, duration, outcome) and its events in time order, compacted for the page: long hex cut to
// its start, secrets and traffic keys left out whatever the events carry, repeated subtrees
// (cipher-suite lists, certificate chains) stored once in a pool. Pure: events in, JSON out.
#pragma once
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "trace/event.h"
#include "trace/json.h"

namespace tlstrace::report {

// Hex strings longer than this many characters keep their first kHexKept and a note of their size.
inline constexpr std::size_t kHexMax = 64;
inline constexpr std::size_t kHexKept = 32;

struct LegFacts {
  std::string version, cipher, group, kex, rating, alpn, cert, error, hint;
  std::int64_t bits = 0;
  std::uint64_t bytes_in = 0, bytes_out = 0;
  bool established = false, resumed = false, hrr = false, closed = false;
};

// One connection: its overview facts and its compact events ([dt_us, leg, name, fields]).
struct Connection {
  std::uint64_t id = 0;
  std::uint32_t file = 0;
  trace::Clock::time_point t0{};
  std::string time, client, mode, target, sni, outcome, cause;
  double duration_ms = -1;
  std::int64_t up = -1, down = -1;
  LegFacts client_leg, upstream_leg;
  std::size_t policy_violations = 0;
  std::string audit;  // the audit.result verdict, when one came
  bool closed = false;
  std::vector<trace::Json> events;
};

// Repeated subtrees stored once: a value whose JSON text is kPoolMin bytes or more becomes
// {"@": index} into `pool`; a pool entry only refers to entries before it (no cycle).
class Pool {
 public:
  static constexpr std::size_t kPoolMin = 48;
  [[nodiscard]] trace::Json intern(const trace::Json& v);
  [[nodiscard]] trace::Json take();  // the pool as a JSON array
 private:
  std::map<std::string, std::size_t, std::less<>> index_;
  trace::Json items_ = trace::Json::array();
};

class Model {
 public:
  // keep: the newest connections kept (0: all). Events of an evicted connection are ignored.
  explicit Model(std::size_t keep = 0) : keep_(keep) {}

  // file: which input the event came from (`report A.jsonl B.jsonl`: each run counts from 1).
  // True when the connection's page data changed: an event it draws (not a record, a relayed
  // chunk or a secret, which it leaves out, nor an event of an evicted connection).
  bool add(const trace::Event& e, std::uint32_t file = 0);
  [[nodiscard]] std::size_t size() const { return conns_.size(); }
  [[nodiscard]] const Connection* find(std::uint64_t id, std::uint32_t file = 0) const;
  [[nodiscard]] std::size_t evicted() const { return evicted_; }
  // Connection ids at or below it (of file 0) were evicted: the live page drops their rows too.
  [[nodiscard]] std::uint64_t evictedBelow() const { return evicted_below_; }

  // What toJson() gives of each connection: everything (`tlstrace report`), or its overview row
  // alone (the live page, which fetches a connection's events when it is opened: summaryJson).
  enum class Detail { Full, Summary };
  // {"v":1,"conns":[...],"pool":[...],"notes":[...]} for the whole page.
  [[nodiscard]] trace::Json toJson(Detail detail = Detail::Full) const;
  // One connection as the page takes it, its repeated parts interned into `pool`.
  [[nodiscard]] static trace::Json connectionJson(const Connection& c, Pool& pool);
  // Its overview row only: connectionJson without the events ("e"), with their number ("n"), by
  // which the live page knows that the events it fetched are no longer all.
  [[nodiscard]] static trace::Json summaryJson(const Connection& c);
  // One whole connection with a pool of its own: {"conns":[c],"pool":[...]} (the live page's
  // GET /conn/ID).
  [[nodiscard]] static trace::Json updateJson(const Connection& c);

 private:
  using Key = std::pair<std::uint32_t, std::uint64_t>;  // (file, conn)
  Connection& connection(const trace::Event& e, std::uint32_t file);

  std::size_t keep_;
  std::size_t evicted_ = 0;
  std::uint64_t evicted_below_ = 0;  // ids at or below it were evicted
  std::map<Key, Connection> conns_;
  std::deque<Key> order_;
  std::vector<std::string> notes_;  // process-wide events (trace.dropped), as sentences
};

// Compacts one value for the page: hex strings over kHexMax characters cut (see above).
[[nodiscard]] trace::Json compact(const trace::Json& v);
void compactInPlace(trace::Json& v);  // the same, on a value the caller owns (no copy)

}  // namespace tlstrace::report

#include "report/live.h"

#include <optional>

namespace tlstrace::report {

void LiveSink::write(const trace::Event& e) {
  const std::lock_guard lock(mu_);
  // (events the page leaves out, records and relayed chunks, change no row: nothing to send)
  if (model_.add(e) && e.conn != 0) dirty_.insert(e.conn);
}

trace::Json LiveSink::snapshot() const {
  const std::lock_guard lock(mu_);
  trace::Json o = model_.toJson(Model::Detail::Summary);
  o.set("below", trace::Json(model_.evictedBelow()));
  return o;
}

std::string LiveSink::takeUpdates(bool wanted) {
  trace::Json conns = trace::Json::array();
  std::uint64_t below = 0;
  {
    const std::lock_guard lock(mu_);
    if (wanted)
      for (const std::uint64_t id : dirty_)
        if (const Connection* c = model_.find(id)) conns.push(Model::summaryJson(*c));
    dirty_.clear();
    below = model_.evictedBelow();
  }
  if (conns.asArray().empty()) return {};
  trace::Json o = trace::Json::object();
  o.set("conns", std::move(conns));
  o.set("below", trace::Json(below));
  return o.dump();
}

std::string LiveSink::detail(std::uint64_t id) const {
  std::optional<Connection> copy;
  {
    // A copy under the lock, the pooling and the text outside it: the trace writer waits for
    // the copy only.
    const std::lock_guard lock(mu_);
    if (const Connection* c = model_.find(id)) copy = *c;
  }
  return copy ? Model::updateJson(*copy).dump() : std::string();
}

}  // namespace tlstrace::report

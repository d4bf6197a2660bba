#include "report/live.h"

namespace tlstrace::report {

void LiveSink::write(const trace::Event& e) {
  const std::lock_guard lock(mu_);
  model_.add(e);
  if (e.conn != 0) dirty_.insert(e.conn);
}

trace::Json LiveSink::snapshot() const {
  const std::lock_guard lock(mu_);
  return model_.toJson();
}

std::string LiveSink::takeUpdates() {
  Pool pool;
  trace::Json conns = trace::Json::array();
  {
    const std::lock_guard lock(mu_);
    for (const std::uint64_t id : dirty_)
      if (const Connection* c = model_.find(id)) conns.push(Model::connectionJson(*c, pool));
    dirty_.clear();
  }
  if (conns.asArray().empty()) return {};
  trace::Json o = trace::Json::object();
  o.set("conns", std::move(conns));
  o.set("pool", pool.take());
  return o.dump();
}

}  // namespace tlstrace::report

// The human-readable trace: one block per event, every line prefixed with time, connection id and
// leg (like javax.net.debug). Pure, so `tlstrace convert --to text` renders exactly what the live
// trace printed.
#pragma once
#include <string>

#include "trace/event.h"

namespace tlstrace::trace {

[[nodiscard]] std::string renderText(const Event& e);

}  // namespace tlstrace::trace

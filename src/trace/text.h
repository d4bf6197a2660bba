// The human-readable trace: one block per event, every line prefixed with time, connection id and
// leg (like javax.net.debug). Pure, so `tlstrace convert --to text` renders exactly what the live
// trace printed.
#pragma once
#include <string>
#include <string_view>

#include "trace/event.h"

namespace tlstrace::trace {

enum class TextFormat {
  Default,  // our own: one block per event, every line prefixed with time, connection and leg
  Jsse,     // shaped like JDK 11+ -Djavax.net.debug=ssl,handshake output
  Openssl,  // shaped like `openssl s_client -trace`
};
[[nodiscard]] bool parseTextFormat(std::string_view s, TextFormat& out);

[[nodiscard]] std::string renderText(const Event& e, TextFormat format = TextFormat::Default);
// The same, appended to `out` (the sinks render straight into their buffer).
void appendText(const Event& e, TextFormat format, std::string& out);

}  // namespace tlstrace::trace

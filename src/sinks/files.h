// One policy for every file tlstrace opens for writing (the trace, the events, the key log, the
// pcapng): who may own it and which mode it gets when it can hold secrets.
#pragma once
#include <string>

namespace tlstrace::sinks {

// Opens `path` for writing, created when absent and appended to, with open(2) `flags` added
// (O_TRUNC, O_NONBLOCK, ...). When `secrets` (the key log and the pcapng always; the events and the
// text trace with --log-secrets) a regular file or FIFO is created 0600, an existing one wider than
// that is narrowed to 0600 (with a warning naming its old mode), and one another user owns is
// refused, as its owner could read what is written or widen it again. O_TRUNC takes effect only
// after those checks: a refused file keeps its content. Devices (/dev/null, a terminal) are
// written as they are. Returns the descriptor, or -1 with `error` naming `what`, the path and why.
[[nodiscard]] int openOutputFile(const std::string& path, const char* what, int flags, bool secrets,
                                 std::string& error);
// The same, throwing std::runtime_error with that message (at start-up: the proxy does not start).
[[nodiscard]] int openOutputFileOrThrow(const std::string& path, const char* what, int flags, bool secrets);

}  // namespace tlstrace::sinks

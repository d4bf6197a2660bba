// Helpers shared by the text renderers (text.cpp: default; text_jsse.cpp; text_openssl.cpp).
#pragma once
#include <string>
#include <string_view>

#include "trace/body.h"
#include "trace/event.h"
#include "trace/json.h"

namespace tlstrace::trace::text_detail {

// {id, name} in that order: how the decoders write registry codes (codeId/codeNameOf below also
// take objects with more fields).
[[nodiscard]] bool isCodeName(const Json& j);
[[nodiscard]] bool isCodeName(const BodyNode& j);  // the same for a tls.message body's values
// Every string these return or append is escaped for the text trace (escape.h): a peer's bytes
// never reach a terminal or a log line as they are. rawStr() is for what a renderer takes apart
// (OpenSSL's multi-line extension text) and escapes piece by piece.
// A flat value as the default trace shows it ("name (0xid)" for codes).
[[nodiscard]] std::string scalar(const Json& j);
// A field of an object as text ("" when absent).
[[nodiscard]] std::string str(const Json& f, std::string_view key);
[[nodiscard]] std::string rawStr(const Json& f, std::string_view key);
[[nodiscard]] std::string esc(std::string_view s);  // escapeText()
// Each line of a multi-line text, escaped, after `indent`, with its '\n'.
void appendEscapedLines(std::string& out, const std::string& indent, std::string_view text);
[[nodiscard]] std::string upperHex(std::string_view lower_hex);
// The {id, name} pair's parts (0 / "" for other values).
[[nodiscard]] std::int64_t codeId(const Json& j);
[[nodiscard]] std::string codeNameOf(const Json& j);
// Whole lines of an object field, or "" / 0 when absent.
[[nodiscard]] const Json& field(const Json& obj, std::string_view key);
[[nodiscard]] std::int64_t intField(const Json& obj, std::string_view key);

[[nodiscard]] std::string renderJsse(const Event& e);
// The TCP ladder (text_tcp.cpp): its line(s) for a TCP event, after `prefix`; ThenFields: the
// event's generic block follows.
enum class LadderStep { NotTcp, Done, ThenFields };
LadderStep appendTcpLadder(const Event& e, const std::string& prefix, std::string& out);
[[nodiscard]] std::string renderOpenssl(const Event& e);

}  // namespace tlstrace::trace::text_detail

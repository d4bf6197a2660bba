// Config files: TOML (read with toml++) flattened into entries that keep the key path as written,
// each value as the text an option would take on the command line, and where it was written.
// Which keys exist and what type they take is not decided here: app/ checks entries against the
// command line's own option definitions, so the file and the CLI cannot drift apart.
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tlstrace::config {

enum class ValueType { String, Integer, Float, Boolean, Array, Other };
// "a string", "an integer", ... for messages.
[[nodiscard]] std::string_view describe(ValueType t);

struct FileEntry {
  // Tables, dotted keys and inline tables nest: `[proxy] client = { tls-min = "1.2" }` is
  // {"proxy", "client", "tls-min"}.
  std::vector<std::string> path;
  ValueType type = ValueType::Other;
  // The elements' type when every element has it (arrays only); Other for mixed or nested ones.
  // An empty array counts as strings.
  ValueType element_type = ValueType::Other;
  std::vector<std::string> values;  // one text, or one per array element
  std::string key_at;               // "file:line:column" of the key
  std::string value_at;             // "file:line:column" of the value
};

// Entries in the order they appear in the file. On malformed TOML returns nullopt with `error`
// as "file:line:column: what".
[[nodiscard]] std::optional<std::vector<FileEntry>> parseConfigText(std::string_view text, const std::string& file,
                                                                    std::string& error);
[[nodiscard]] std::optional<std::vector<FileEntry>> readConfigFile(const std::string& file, std::string& error);
// A whole file, or nullopt with `error` ("file: cannot read: why").
[[nodiscard]] std::optional<std::string> readTextFile(const std::string& file, std::string& error);

// Levenshtein distance, for "did you mean".
[[nodiscard]] std::size_t editDistance(std::string_view a, std::string_view b);
// The candidate closest to `word`, if at most half of the longer one's letters differ; else "".
[[nodiscard]] std::string nearest(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace tlstrace::config

// The subset of TOML our config files use: comments, `[proxy]` tables, and `key = value` with
// strings, integers, floats and booleans. Pure; errors name the line.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tlstrace::config {

struct TomlEntry {
  std::string table;  // "" for top level
  std::string key;
  std::string value;  // unquoted text
  bool is_bool = false;
  int line = 0;
};

[[nodiscard]] std::optional<std::vector<TomlEntry>> parseToml(std::string_view text, std::string& error);

// Command-line arguments equivalent to a config file for one command: `key = v` becomes `--key v`,
// `flag = true` becomes `--flag`, `flag = false` is dropped. Entries of other tables are ignored.
[[nodiscard]] std::vector<std::string> tomlToArgs(const std::vector<TomlEntry>& entries,
                                                  std::string_view command);

}  // namespace tlstrace::config

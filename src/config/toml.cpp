#include "config/toml.h"

#include <cctype>

namespace tlstrace::config {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool validKey(std::string_view k) {
  if (k.empty()) return false;
  for (char c : k)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  return true;
}

}  // namespace

std::optional<std::vector<TomlEntry>> parseToml(std::string_view text, std::string& error) {
  std::vector<TomlEntry> out;
  std::string table;
  int line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    auto fail = [&](const std::string& why) {
      error = "line " + std::to_string(line_no) + ": " + why;
      return std::nullopt;
    };
    line = trim(line);
    if (line.empty() || line.front() == '#') continue;
    if (line.front() == '[') {
      if (line.back() != ']') return fail("unterminated table header");
      table = std::string(trim(line.substr(1, line.size() - 2)));
      if (!validKey(table)) return fail("bad table name");
      continue;
    }
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) return fail("expected key = value");
    TomlEntry e;
    e.table = table;
    e.line = line_no;
    e.key = std::string(trim(line.substr(0, eq)));
    if (!validKey(e.key)) return fail("bad key '" + e.key + "'");
    std::string_view v = trim(line.substr(eq + 1));
    if (v.empty()) return fail("missing value");
    if (v.front() == '"' || v.front() == '\'') {
      const char q = v.front();
      std::string s;
      std::size_t i = 1;
      bool closed = false;
      for (; i < v.size(); ++i) {
        char c = v[i];
        if (c == q) {
          closed = true;
          break;
        }
        if (c == '\\' && q == '"' && i + 1 < v.size()) {
          char n = v[++i];
          s.push_back(n == 'n' ? '\n' : n == 't' ? '\t' : n);
          continue;
        }
        s.push_back(c);
      }
      if (!closed) return fail("unterminated string");
      std::string_view rest = trim(v.substr(i + 1));
      if (!rest.empty() && rest.front() != '#') return fail("text after the string");
      e.value = s;
    } else {
      if (auto hash = v.find('#'); hash != std::string_view::npos) v = trim(v.substr(0, hash));
      if (v == "true" || v == "false") {
        e.is_bool = true;
      } else {
        for (char c : v)
          if (!std::isdigit(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '+' && c != '_')
            return fail("unquoted value '" + std::string(v) + "' (quote strings)");
      }
      e.value = std::string(v);
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<std::string> tomlToArgs(const std::vector<TomlEntry>& entries, std::string_view command) {
  std::vector<std::string> args;
  for (const auto& e : entries) {
    if (!e.table.empty() && e.table != command) continue;
    if (e.is_bool) {
      if (e.value == "true") args.push_back("--" + e.key);
      continue;
    }
    args.push_back("--" + e.key);
    args.push_back(e.value);
  }
  return args;
}

}  // namespace tlstrace::config

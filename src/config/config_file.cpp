#include "config/config_file.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

namespace tlstrace::config {

namespace {

std::string at(const std::string& file, const toml::source_position& p) {
  return file + ":" + std::to_string(p.line) + ":" + std::to_string(p.column);
}

ValueType typeOf(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return ValueType::String;
    case toml::node_type::integer: return ValueType::Integer;
    case toml::node_type::floating_point: return ValueType::Float;
    case toml::node_type::boolean: return ValueType::Boolean;
    case toml::node_type::array: return ValueType::Array;
    default: return ValueType::Other;
  }
}

// The text CLI11 would get for this value on the command line; "" for tables, arrays and dates.
std::string text(const toml::node& n) {
  if (const auto* s = n.as_string()) return s->get();
  if (const auto* i = n.as_integer()) return std::to_string(i->get());
  if (const auto* b = n.as_boolean()) return b->get() ? "true" : "false";
  if (const auto* f = n.as_floating_point()) {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, f->get());  // shortest text that reads back the same
    return std::string(buf, r.ptr);
  }
  return {};
}

void flatten(const toml::table& t, const std::string& file, std::vector<std::string>& path,
             std::vector<std::pair<toml::source_position, FileEntry>>& out) {
  for (auto&& [k, v] : t) {
    path.emplace_back(k.str());
    if (const auto* sub = v.as_table()) {
      flatten(*sub, file, path, out);
    } else {
      FileEntry e;
      e.path = path;
      e.type = typeOf(v);
      e.key_at = at(file, k.source().begin);
      e.value_at = at(file, v.source().begin);
      if (const auto* arr = v.as_array()) {
        e.element_type = ValueType::String;
        for (std::size_t i = 0; i < arr->size(); ++i) {
          const ValueType et = typeOf(*arr->get(i));
          if (i == 0) e.element_type = et;
          if (et != e.element_type || et == ValueType::Array) e.element_type = ValueType::Other;
          e.values.push_back(text(*arr->get(i)));
        }
      } else {
        e.values.push_back(text(v));
      }
      out.emplace_back(k.source().begin, std::move(e));
    }
    path.pop_back();
  }
}

}  // namespace

std::string_view describe(ValueType t) {
  switch (t) {
    case ValueType::String: return "a string";
    case ValueType::Integer: return "an integer";
    case ValueType::Float: return "a float";
    case ValueType::Boolean: return "a boolean";
    case ValueType::Array: return "an array";
    case ValueType::Other: break;
  }
  return "a date or time";
}

std::optional<std::vector<FileEntry>> parseConfigText(std::string_view text, const std::string& file,
                                                      std::string& error) {
  toml::table root;
  try {
    root = toml::parse(text, file);
  } catch (const toml::parse_error& e) {
    error = at(file, e.source().begin) + ": " + std::string(e.description());
    return std::nullopt;
  }
  std::vector<std::pair<toml::source_position, FileEntry>> found;
  std::vector<std::string> path;
  flatten(root, file, path, found);
  // toml++ tables are ordered by key; report in file order so the first problem comes first.
  std::stable_sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
    return a.first.line != b.first.line ? a.first.line < b.first.line : a.first.column < b.first.column;
  });
  std::vector<FileEntry> out;
  out.reserve(found.size());
  for (auto& f : found) out.push_back(std::move(f.second));
  return out;
}

std::optional<std::string> readTextFile(const std::string& file, std::string& error) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    error = file + ": cannot read: " + std::strerror(errno);
    return std::nullopt;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::optional<std::vector<FileEntry>> readConfigFile(const std::string& file, std::string& error) {
  const auto text = readTextFile(file, error);
  if (!text) return std::nullopt;
  return parseConfigText(*text, file, error);
}

std::size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string nearest(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_d = 0;
  for (const auto& c : candidates) {
    const std::size_t d = editDistance(word, c);
    // Half the longer word: 'listen-port' still finds 'listen', 'xyz' finds nothing.
    if (d * 2 > std::max(word.size(), c.size())) continue;
    if (best.empty() || d < best_d) {
      best = c;
      best_d = d;
    }
  }
  return best;
}

}  // namespace tlstrace::config

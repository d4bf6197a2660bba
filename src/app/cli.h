// The command line (CLI11) for each command, filling plain config structs; see docs/cli.md.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"

namespace CLI {
class App;
}

namespace tlstrace::app {

// Raw option text that needs parsing after CLI11 is done.
struct CliState {
  std::string listen = "127.0.0.1:8080";
  std::string mode = "explicit";
  std::string upstream;
  std::vector<std::string> config_files;  // --config, in command-line order
  std::string ui;                         // --ui HOST:PORT ("" = off)
};

CLI::App* addProxyCommand(CLI::App& app, config::ProxyConfig& cfg, CliState& st);
struct CaOptions;
CLI::App* addCaCommand(CLI::App& app, config::ProxyConfig& cfg, CaOptions& opt);
// After CLI11 has parsed the command line: sets the options of `cmd` (the parsed proxy command)
// that the command line left unset from each --config file, a later file winning over an earlier
// one. Valid keys and their types are `cmd`'s own options, so the file takes exactly what the
// command line takes. Throws CLI::ConfigError naming file:line:column for an unreadable or
// malformed file, an unknown key (with the nearest valid one) or a value of the wrong type.
void applyConfigFiles(CLI::App& cmd, const CliState& st);
// Each key a config file may set for `cmd` with the TOML type it takes ("" if an option's type has
// no TOML equivalent yet: then applyConfigFiles refuses that key).
[[nodiscard]] std::vector<std::pair<std::string, std::string>> configKeys(const CLI::App& cmd);
// Converts CliState into cfg; throws CLI::ValidationError on bad values.
void finishConfig(config::ProxyConfig& cfg, const CliState& st);

}  // namespace tlstrace::app

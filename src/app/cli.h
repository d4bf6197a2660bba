// The command line (CLI11) for each command, filling plain config structs; see docs/cli.md.
#pragma once
#include <string>
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
  std::string config_file;
};

// Replaces `--config FILE` with the options the file holds, placed before the command line's own
// so that the command line wins. Throws CLI::Error on an unreadable or malformed file.
[[nodiscard]] std::vector<std::string> expandConfigFiles(const std::vector<std::string>& args);

CLI::App* addProxyCommand(CLI::App& app, config::ProxyConfig& cfg, CliState& st);
CLI::App* addCaCommand(CLI::App& app, config::ProxyConfig& cfg, std::string& action);
// Converts CliState into cfg; throws CLI::ValidationError on bad values.
void finishConfig(config::ProxyConfig& cfg, const CliState& st);

}  // namespace tlstrace::app

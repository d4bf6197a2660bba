#include "app/report_run.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "report/model.h"
#include "report/page.h"
#include "sinks/convert.h"

namespace tlstrace::app {

int runReportCommand(const std::vector<std::string>& events_files, const std::string& out_file, std::string title) {
  report::Model model;
  int rc = 0;
  for (std::size_t i = 0; i < events_files.size(); ++i) {
    const std::string& path = events_files[i];
    std::FILE* in = path == "-" ? stdin : std::fopen(path.c_str(), "rb");
    if (!in) {
      spdlog::error("cannot open {}: {}", path, std::strerror(errno));
      return 1;
    }
    // The same reader as `convert`: every line is untrusted input.
    sinks::EventsConverter reader(path == "-" ? "stdin" : path, sinks::EventsConverter::To::Text,
                                  trace::TextFormat::Default);
    const auto file = static_cast<std::uint32_t>(i);
    const int r = reader.read(
        in, [&](const trace::Event& e) { model.add(e, file); },
        [](bool is_error, const std::string& m) {
          if (is_error) spdlog::error("{}", m);
          else spdlog::warn("{}", m);
        });
    if (in != stdin) std::fclose(in);
    if (r > rc) rc = r;
  }
  if (title.empty())
    title = "tlstrace report: " +
            (events_files.size() == 1 ? events_files.front() : std::to_string(events_files.size()) + " events files");
  const std::string page = report::renderPage(model.toJson(), report::PageMode::File, title);
  std::FILE* out = out_file == "-" ? stdout : std::fopen(out_file.c_str(), "wb");
  if (!out) {
    spdlog::error("cannot write {}: {}", out_file, std::strerror(errno));
    return 1;
  }
  const bool ok = std::fwrite(page.data(), 1, page.size(), out) == page.size();
  if ((out == stdout ? std::fflush(out) : std::fclose(out)) != 0 || !ok) {
    spdlog::error("cannot write {}: {}", out_file, std::strerror(errno));
    return 1;
  }
  if (out_file != "-") spdlog::info("{}: {} connections, {} bytes", out_file, model.size(), page.size());
  return rc;
}

}  // namespace tlstrace::app

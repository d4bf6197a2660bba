// `tlstrace report EVENTS.jsonl... -o report.html`: recorded events files as one self-contained
// HTML page (src/report/).
#pragma once
#include <string>
#include <vector>

namespace tlstrace::app {

// Exit status: 0 written, 1 an input or the output could not be opened, 2 a line was not an event
// (the page is still written from the others, as `convert` does).
int runReportCommand(const std::vector<std::string>& events_files, const std::string& out_file, std::string title);

}  // namespace tlstrace::app

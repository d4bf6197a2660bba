// The report page's files, compiled in (cmake/embed_page.cmake generates their definitions).
#pragma once
#include <string_view>

namespace tlstrace::report {

extern const std::string_view kPageHtml;
extern const std::string_view kPageCss;
extern const std::string_view kPageJs;

}  // namespace tlstrace::report

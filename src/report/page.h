// The report page: report.html with its CSS, JavaScript and the data embedded, one self-contained
// file (no fetch, no CDN). The page's own files are under src/report/page/, compiled into the
// binary at build time (cmake/embed_page.cmake).
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

#include "trace/json.h"

namespace tlstrace::report {

// What the page is: a file on disk (`tlstrace report`) or served live (`proxy --ui`), which
// then follows /events (server-sent events) for updates.
enum class PageMode { File, Live };

// The whole HTML document with `data` (Model::toJson()) in a <script type="application/json">.
[[nodiscard]] std::string renderPage(const trace::Json& data, PageMode mode, std::string_view title);

// Data larger than this is embedded zlib-compressed and base64-encoded (the page inflates it with
// the browser's own DecompressionStream): 1,000 connections fit in 2 MB. Smaller data stays
// JSON, readable in the file. Builds without zlib always embed JSON.
inline constexpr std::size_t kCompressAbove = 256 * 1024;
[[nodiscard]] bool canCompress();
// The data block: {encoding ("json" or "deflate-base64"), text}.
struct DataBlock {
  std::string encoding, text;
};
[[nodiscard]] DataBlock dataBlock(const trace::Json& data, std::size_t compress_above = kCompressAbove);

// JSON text safe inside a <script> element: every '<' written as \u003c, so that no string of
// the data (a peer's SNI, a certificate name) can close the element or open a comment.
[[nodiscard]] std::string scriptSafeJson(const trace::Json& data);

}  // namespace tlstrace::report

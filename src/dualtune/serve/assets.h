#pragma once
// The page's files (src/dualtune/serve/www/), compiled into the binary by
// cmake/embed_files.cmake: plain HTML, CSS and JS, no build step, nothing fetched from
// the internet.
#include <cstddef>
#include <string>
#include <vector>

namespace dualtune::serve {

struct Asset {
  const char* name;  ///< file name in www/, e.g. "index.html"
  const unsigned char* data;
  size_t size;
};

/// Every embedded file (generated www_assets.cc).
const std::vector<Asset>& assets();
/// The file called name, or null.
const Asset* find_asset(const std::string& name);
/// Content-Type by extension (html, css, js, svg, png; else application/octet-stream).
const char* content_type_of(const std::string& name);

}  // namespace dualtune::serve

#include "dualtune/serve/assets.h"

namespace dualtune::serve {

const Asset* find_asset(const std::string& name) {
  for (const auto& a : assets())
    if (name == a.name) return &a;
  return nullptr;
}

const char* content_type_of(const std::string& name) {
  auto ends = [&](const char* ext) {
    const std::string e(ext);
    return name.size() >= e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0;
  };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".png")) return "image/png";
  return "application/octet-stream";
}

}  // namespace dualtune::serve

#include "dualtune/util/env.h"

#include <cstdlib>

#include "dualtune/util/error.h"

namespace dualtune {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

int env_int(const char* name, int fallback) {
  const std::string v = env_or(name, "");
  if (v.empty()) return fallback;
  try {
    size_t used = 0;
    const int x = std::stoi(v, &used);
    if (used == v.size()) return x;
  } catch (const std::exception&) {
  }
  DT_THROW("environment variable ", name, ": expected an integer, found '", v, "'");
}

}  // namespace dualtune

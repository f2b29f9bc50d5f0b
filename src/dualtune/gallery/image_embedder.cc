#include "dualtune/gallery/image_embedder.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"
#include "dualtune/util/run_dir.h"

namespace fs = std::filesystem;

namespace dualtune::gallery {

std::string model_fingerprint(const std::string& path) {
  DT_CHECK(fs::exists(path), "model ", path, " does not exist (expected a run directory or a TorchScript file)");
  if (fs::is_directory(path)) {
    const std::string meta = RunPaths{path}.meta();
    DT_CHECK(fs::exists(meta), "model ", path, ": expected a run directory with meta.json, found none");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_file(meta));
    } catch (const nlohmann::json::exception& e) {
      DT_THROW("model ", path, ": meta.json is not valid JSON: ", e.what());
    }
    const std::string hash = j.value("config_hash", std::string());
    DT_CHECK(!hash.empty(), "model ", path, ": meta.json has no config_hash");
    return "config:" + hash;
  }
  std::ifstream is(path, std::ios::binary);
  DT_CHECK(is.good(), "cannot read model ", path);
  uint64_t h = 14695981039346656037ull;  // FNV-1a 64
  char buf[1 << 16];
  while (is.read(buf, sizeof buf) || is.gcount() > 0) {
    for (std::streamsize i = 0; i < is.gcount(); ++i) {
      h ^= static_cast<unsigned char>(buf[i]);
      h *= 1099511628211ull;
    }
  }
  char hex[24];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return std::string("file:") + hex;
}

}  // namespace dualtune::gallery

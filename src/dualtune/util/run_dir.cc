#include "dualtune/util/run_dir.h"

#include <filesystem>

#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"
#include "dualtune/util/provenance.h"

namespace dualtune {

nlohmann::json read_meta(const std::string& run_dir) {
  const RunPaths p{run_dir};
  if (!std::filesystem::exists(p.meta())) return nlohmann::json::object();
  try {
    return nlohmann::json::parse(read_file(p.meta()));
  } catch (const nlohmann::json::exception& e) {
    DT_THROW(p.meta(), ": corrupt meta.json (", e.what(), ")");
  }
}

bool run_is_complete(const std::string& run_dir, const std::string& hash) {
  const auto meta = read_meta(run_dir);
  return meta.value("complete", false) && meta.value("config_hash", std::string()) == hash &&
         std::filesystem::exists(RunPaths{run_dir}.checkpoint());
}

std::string code_version() { return provenance().version + "+git." + provenance().git_revision; }

}  // namespace dualtune

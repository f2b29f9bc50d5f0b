#include "dualtune/features/npz.h"

#include "dualtune/features/zip.h"
#include "dualtune/util/error.h"

namespace dualtune::npy {

std::map<std::string, std::string> npz_members(const std::string& bytes, const std::string& source) {
  std::map<std::string, std::string> out;
  for (auto& [name, content] : zip::read_members(bytes, "npz " + source)) {
    const std::string ext = ".npy";
    DT_CHECK(name.size() > ext.size() && name.compare(name.size() - ext.size(), ext.size(), ext) == 0, "npz ", source,
             ": member '", name, "' is not an .npy file (np.savez writes one <key>.npy per array)");
    const std::string key = name.substr(0, name.size() - ext.size());
    DT_CHECK(out.emplace(key, std::move(content)).second, "npz ", source, ": array '", key, "' appears twice");
  }
  return out;
}

}  // namespace dualtune::npy

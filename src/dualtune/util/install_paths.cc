#include "dualtune/util/install_paths.h"

#include <filesystem>
#include <fstream>

#include "dualtune/util/error.h"

namespace fs = std::filesystem;

namespace dualtune {
namespace {

/// CMAKE_HOME_DIRECTORY (the source directory) from <build>/CMakeCache.txt, or "".
std::string source_dir_of_build(const fs::path& build_dir) {
  std::ifstream cache(build_dir / "CMakeCache.txt");
  const std::string key = "CMAKE_HOME_DIRECTORY:INTERNAL=";
  for (std::string line; std::getline(cache, line);) {
    if (line.compare(0, key.size(), key) == 0) return line.substr(key.size());
  }
  return "";
}

}  // namespace

std::string executable_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : exe.parent_path().string();
}

std::string shipped_dir(const std::string& what, const std::string& exe_dir) {
  if (exe_dir.empty()) return "";
  std::error_code ec;
  const fs::path installed = fs::path(exe_dir).parent_path() / "share" / "dualtune" / what;
  if (fs::is_directory(installed, ec)) return installed.lexically_normal().string();
  const std::string src = source_dir_of_build(exe_dir);
  if (!src.empty() && fs::is_directory(fs::path(src) / what, ec)) return (fs::path(src) / what).string();
  return "";
}

std::string require_shipped_dir(const std::string& what) {
  const std::string exe = executable_dir();
  const std::string dir = shipped_dir(what, exe);
  DT_CHECK(!dir.empty(), "cannot find dualtune's shipped ", what, "/: expected ",
           (fs::path(exe).parent_path() / "share" / "dualtune" / what).string(),
           " (installed) or a source tree named by ", (fs::path(exe) / "CMakeCache.txt").string(),
           " (build directory); found neither");
  return dir;
}

}  // namespace dualtune

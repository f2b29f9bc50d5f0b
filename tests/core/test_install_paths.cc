// Shipped files are found relative to the binary: an installed prefix first, then the
// source tree a CMake build directory names; nothing compiled in.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "dualtune/util/install_paths.h"

namespace fs = std::filesystem;
using dualtune::shipped_dir;

TEST(InstallPaths, InstalledPrefixThenSourceTreeOfABuildDirectory) {
  const fs::path root = fs::temp_directory_path() / ("dt_test_paths_" + std::to_string(::getpid()));
  fs::remove_all(root);
  // Installed: <prefix>/bin/dualtune -> <prefix>/share/dualtune/configs.
  fs::create_directories(root / "prefix/bin");
  fs::create_directories(root / "prefix/share/dualtune/configs");
  EXPECT_EQ(shipped_dir("configs", (root / "prefix/bin").string()), (root / "prefix/share/dualtune/configs").string());
  EXPECT_EQ(shipped_dir("docs", (root / "prefix/bin").string()), "");  // not installed there
  // Build directory: CMakeCache.txt names the source tree.
  fs::create_directories(root / "src/configs");
  fs::create_directories(root / "build");
  std::ofstream(root / "build/CMakeCache.txt") << "# comment\nCMAKE_BUILD_TYPE:STRING=Release\n"
                                               << "CMAKE_HOME_DIRECTORY:INTERNAL=" << (root / "src").string() << "\n";
  EXPECT_EQ(shipped_dir("configs", (root / "build").string()), (root / "src/configs").string());
  // Neither: nothing found.
  fs::create_directories(root / "elsewhere");
  EXPECT_EQ(shipped_dir("configs", (root / "elsewhere").string()), "");
  // This test binary runs from the build directory: it finds this source tree's configs.
  EXPECT_EQ(fs::path(shipped_dir("configs")), fs::path(DUALTUNE_SOURCE_DIR) / "configs");
  fs::remove_all(root);
}

#pragma once
// The torchvision-layout ResNet-18 files of tests/fixtures/torchvision/make_resnet18.py
// (Debian's python3-torch; ~130 MB, so made at test time, never committed). Made once
// per build tree under <build>/test_fixtures/torchvision and made again when the script
// changes (its text is compared with the copy kept beside the files). Made under an
// flock of <dir>.lock, so test processes running side by side (ctest -j) make it once
// and never see half a set.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tiny_data.h"

namespace dualtune::testdata {

/// The fixture directory; *error gets the script's output when it could not be made ("" = ok).
inline std::string torchvision_fixture(std::string* error) {
  namespace fs = std::filesystem;
  const std::string script = std::string(DUALTUNE_SOURCE_DIR) + "/tests/fixtures/torchvision/make_resnet18.py";
  const std::string dir = std::string(DUALTUNE_BUILD_DIR) + "/test_fixtures/torchvision";
  const std::string text = slurp(script);
  error->clear();
  fs::create_directories(fs::path(dir).parent_path());
  const int lock = ::open((dir + ".lock").c_str(), O_CREAT | O_RDWR, 0644);
  if (lock >= 0) ::flock(lock, LOCK_EX);
  if (slurp(dir + "/make_resnet18.py") != text || !fs::exists(dir + "/features.npy")) {
    fs::remove_all(dir);
    int status = 0;
    const std::string out = run_command("/usr/bin/python3 " + script + " " + dir, &status);
    if (status == 0) {
      std::ofstream(dir + "/make_resnet18.py") << text;  // last: marks the set complete
    } else {
      *error = "tests/fixtures/torchvision/make_resnet18.py failed (needs python3-torch and python3-numpy, "
               "scripts/install_deps.sh):\n" + out;
      fs::remove_all(dir);
    }
  }
  if (lock >= 0) ::close(lock);  // releases the flock
  return dir;
}

}  // namespace dualtune::testdata

#pragma once
// What built this binary: dualtune's version, the git revision it was built from and
// the versions of the libraries whose behaviour shapes the numbers (libtorch, FAISS,
// OpenCV). `dualtune --version` prints it; every run's meta.json and every report
// records it, so a number can be traced to the code that produced it.
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace dualtune {

struct Provenance {
  std::string version;       ///< dualtune's version (CMake project version)
  std::string git_revision;  ///< `git describe --always --dirty` at build time, or "unknown"
  std::string libtorch;      ///< libtorch version built against, or "none" (core-only build)
  std::string faiss;         ///< FAISS version built against
  std::string opencv;        ///< OpenCV version of the loaded library
};

const Provenance& provenance();

/// The --version text: "dualtune X (git R)\nlibtorch A, FAISS B, OpenCV C\n".
std::string version_text();

/// {"dualtune": X, "git_revision": R, "libtorch": A, "faiss": B, "opencv": C}.
nlohmann::json provenance_json();

}  // namespace dualtune

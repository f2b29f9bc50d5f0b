#include "dualtune/util/provenance.h"

#include <faiss/Index.h>

#include <nlohmann/json.hpp>
#include <opencv2/core/utility.hpp>

#include "dualtune_git_revision.h"  // generated at build time (cmake/git_revision.cmake)

#ifndef DUALTUNE_VERSION
#error "DUALTUNE_VERSION must be defined by the build (CMake project version)"
#endif
#ifndef DUALTUNE_TORCH_VERSION
#define DUALTUNE_TORCH_VERSION "none"
#endif

namespace dualtune {

#define DT_STR2(x) #x
#define DT_STR(x) DT_STR2(x)

const Provenance& provenance() {
  static const Provenance p{
      DUALTUNE_VERSION, DUALTUNE_GIT_REVISION, DUALTUNE_TORCH_VERSION,
      DT_STR(FAISS_VERSION_MAJOR) "." DT_STR(FAISS_VERSION_MINOR) "." DT_STR(FAISS_VERSION_PATCH),
      cv::getVersionString()};
  return p;
}

std::string version_text() {
  const auto& p = provenance();
  return "dualtune " + p.version + " (git " + p.git_revision + ")\nlibtorch " + p.libtorch + ", FAISS " + p.faiss +
         ", OpenCV " + p.opencv + "\n";
}

nlohmann::json provenance_json() {
  const auto& p = provenance();
  return {{"dualtune", p.version},
          {"git_revision", p.git_revision},
          {"libtorch", p.libtorch},
          {"faiss", p.faiss},
          {"opencv", p.opencv}};
}

}  // namespace dualtune

#pragma once
// FeatureSet: the seam between the torch side and evaluation.
// Layout (FAISS convention): n vectors of size d are a compact row-major n×d float
// matrix. On disk, a directory with
//   features.npy  float32 n×d (npy v1.0, little endian, C order)
//   labels.npy    int64 n       (-1 = junk)
//   cams.npy      int64 n       (-1 = unknown)
//   paths.txt     n lines
//   classes.json  optional class map (names of labels)
// or an .npz archive with the arrays features, labels and (optional) cams, as
// np.savez / np.savez_compressed write them. numpy's other default dtypes are read
// too (float64 / float16 features, int32 / uint labels, Fortran order: npy.h).
#include <cstdint>
#include <string>
#include <vector>

namespace dualtune::features {

struct FeatureSet {
  int64_t n = 0, d = 0;
  std::vector<float> features;  ///< n * d
  std::vector<int64_t> labels;  ///< n
  std::vector<int64_t> cams;    ///< n
  std::vector<std::string> paths;  ///< n
  std::vector<std::string> class_names;  ///< optional: name of each label

  /// Checks sizes agree; throws dualtune::Error saying which does not.
  void check() const;
  /// Writes the directory (each file atomically). Creates dir.
  void save(const std::string& dir) const;
  /// Reads and checks a directory or an .npz archive; errors name the file and what
  /// was wrong; conversions are stated on stderr. With labels_required false a directory
  /// without labels.npy gives labels −1 (unlabelled rows, e.g. a production gallery
  /// imported by `gallery import`); an .npz archive always needs its labels.
  static FeatureSet load(const std::string& dir, bool labels_required = true);
};

}  // namespace dualtune::features

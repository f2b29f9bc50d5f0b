#pragma once
// Datasets: an indexed list of (image, dense label, camera, path). Images are
// decoded lazily (image(i)) so large ImageFolder / Market-1501 sets stay on disk;
// IDX sets live in memory. Labels are dense 0..C-1 into the dataset's ClassMap,
// whose *names* carry identity across models (compatibility is matched by name).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dualtune/data/class_map.h"

namespace dualtune::data {

/// A decoded image: h × w × c bytes, row-major HWC (c = 1 gray or 3 BGR->RGB).
struct Image {
  int h = 0, w = 0, c = 0;
  std::vector<uint8_t> pixels;  ///< size h * w * c
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual size_t size() const = 0;
  /// Decodes item i; throws dualtune::Error naming the file when it is unreadable.
  virtual Image image(size_t i) const = 0;
  /// Dense label in [0, classes().size()), or -1 for junk (Market id -1).
  virtual int64_t label(size_t i) const = 0;
  /// Camera id, -1 when the format has none.
  virtual int64_t camera(size_t i) const { (void)i; return -1; }
  /// Source path (or "<file>#<index>" for IDX).
  virtual std::string path(size_t i) const = 0;
  virtual const ClassMap& classes() const = 0;
};

/// Which part of a dataset to read.
struct DatasetSpec {
  std::string format = "idx";   ///< idx | image_folder | market1501
  std::string root;             ///< directory
  std::string split = "train";  ///< idx: train | test; image_folder: subfolder ("" = root);
                                ///< market1501: train | query | gallery
  std::string classes = "all";  ///< class subset, see class_subset.h
  int64_t limit = 0;            ///< >0: keep only the first `limit` items after subsetting (seeded-stable)
};

/// Opens the dataset described by spec (readers: idx.h, image_folder.h, market1501.h)
/// and applies the class subset. Throws dualtune::Error on any problem.
std::shared_ptr<Dataset> open_dataset(const DatasetSpec& spec);

}  // namespace dualtune::data

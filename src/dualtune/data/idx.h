#pragma once
// IDX files (MNIST / Fashion-MNIST), raw or gzipped (detected by the gzip magic 1f 8b).
// Layout, big-endian: magic = 0x00 0x00 TYPE NDIM (TYPE 0x08 = unsigned byte, the only
// type these datasets use), then NDIM uint32 sizes, then prod(sizes) bytes. Images are
// magic 0x00000803 (count × rows × cols), labels 0x00000801 (count).
// A split "train" reads train-images-idx3-ubyte[.gz] + train-labels-idx1-ubyte[.gz],
// "test" the t10k-* pair. Classes are the distinct label values, named by their decimal
// string and sorted numerically ("0".."9"); items live in memory; path = "<file>#<i>".
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dualtune/data/dataset.h"

namespace dualtune::data {

/// A parsed IDX array of unsigned bytes.
struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;  ///< prod(dims) bytes, row-major
};

/// Parses IDX bytes (gzipped or raw) from memory. `source` names the input in errors;
/// `expected_ndim` > 0 additionally requires that many dimensions (3 images, 1 labels).
IdxArray parse_idx(const std::string& bytes, const std::string& source, int expected_ndim = 0);

/// Inflates a gzip stream; throws naming `source` on corrupt or truncated data.
std::string gunzip(const std::string& bytes, const std::string& source);

/// Reads and parses one IDX file.
IdxArray read_idx_file(const std::string& path, int expected_ndim = 0);

class IdxDataset : public Dataset {
 public:
  /// Opens root/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] for split train|test.
  IdxDataset(const std::string& root, const std::string& split);
  /// Builds from parsed arrays (images n×h×w, labels n); names are used in errors and paths.
  IdxDataset(const IdxArray& images, const IdxArray& labels, const std::string& images_name,
             const std::string& labels_name);

  size_t size() const override { return labels_.size(); }
  Image image(size_t i) const override;
  int64_t label(size_t i) const override { return labels_.at(i); }
  std::string path(size_t i) const override { return images_name_ + "#" + std::to_string(i); }
  const ClassMap& classes() const override { return classes_; }

 private:
  void init(const IdxArray& images, const IdxArray& labels);
  std::string images_name_, labels_name_;
  int h_ = 0, w_ = 0;
  std::vector<uint8_t> pixels_;  ///< n × h × w
  std::vector<int64_t> labels_;  ///< dense
  ClassMap classes_;
};

}  // namespace dualtune::data

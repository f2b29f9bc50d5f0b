#pragma once
// Reading an item's image from its source (embedder.h's ImageRef) without a model: what
// `dualtune serve` shows as thumbnails, and what a torch-free embedder needs. A dataset
// source ({"format":"idx"|"image_folder"|"market1501",...}) is opened once and its
// items are found by path (= the item's key); {"format":"files"}: the key is the file.
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "dualtune/data/dataset.h"
#include "dualtune/gallery/image_embedder.h"

namespace dualtune::gallery {

class ImageReader {
 public:
  /// The decoded image of ref. Throws dualtune::Error naming the key when the item has no
  /// source, its source has no item with this key, or the file is missing or corrupt.
  /// Thread-safe: sources are opened once, under a lock; decoding runs outside it.
  data::Image read(const ImageRef& ref);

 private:
  struct Source {
    std::shared_ptr<data::Dataset> dataset;  ///< null for {"format":"files"}
    std::unordered_map<std::string, size_t> index;
  };
  const Source& source(const std::string& spec);
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Source>> sources_;
};

}  // namespace dualtune::gallery

#pragma once
// Item thumbnails for the page: the item's image read from its source
// (gallery::ImageReader), shrunk so its longer side is at most `max_side` (never
// enlarged: the browser scales small images), encoded as PNG. Recently used thumbnails
// stay in memory (LRU, kCapacity entries).
#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

#include "dualtune/data/dataset.h"
#include "dualtune/gallery/image_reader.h"

namespace dualtune::serve {

/// PNG bytes of img, its longer side shrunk to at most max_side (area interpolation).
std::string encode_thumbnail(const data::Image& img, int max_side);

class Thumbnails {
 public:
  static constexpr size_t kCapacity = 4096;
  /// PNG of the item's image (throws dualtune::Error from ImageReader when it cannot be read).
  std::string png(const gallery::ImageRef& ref, int max_side);

 private:
  gallery::ImageReader reader_;
  std::mutex mu_;
  std::list<std::pair<std::string, std::string>> lru_;  ///< (cache key, png), most recent first
  std::unordered_map<std::string, std::list<std::pair<std::string, std::string>>::iterator> index_;
};

}  // namespace dualtune::serve

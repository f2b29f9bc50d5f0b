#include "dualtune/serve/thumbnails.h"

#include <algorithm>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "dualtune/util/error.h"

namespace dualtune::serve {

std::string encode_thumbnail(const data::Image& img, int max_side) {
  DT_CHECK(img.h > 0 && img.w > 0 && (img.c == 1 || img.c == 3), "thumbnail: expected a 1- or 3-channel image, found ",
           img.h, "x", img.w, "x", img.c);
  cv::Mat m(img.h, img.w, img.c == 1 ? CV_8UC1 : CV_8UC3, const_cast<uint8_t*>(img.pixels.data()));
  cv::Mat out = m;
  if (img.c == 3) cv::cvtColor(m, out, cv::COLOR_RGB2BGR);  // Image is RGB, OpenCV writes BGR
  const int side = std::max(img.h, img.w);
  if (side > max_side) {
    const double f = double(max_side) / double(side);
    cv::Mat small;
    cv::resize(out, small, cv::Size(std::max(1, int(img.w * f + 0.5)), std::max(1, int(img.h * f + 0.5))), 0, 0,
               cv::INTER_AREA);
    out = small;
  }
  std::vector<uint8_t> png;
  DT_CHECK(cv::imencode(".png", out, png), "thumbnail: PNG encoding failed");
  return std::string(png.begin(), png.end());
}

std::string Thumbnails::png(const gallery::ImageRef& ref, int max_side) {
  const std::string key = std::to_string(ref.item_id) + "/" + std::to_string(max_side) + "/" + ref.key;
  {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = index_.find(key);
    if (it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->second;
    }
  }
  std::string png = encode_thumbnail(reader_.read(ref), max_side);
  std::lock_guard<std::mutex> lk(mu_);
  if (!index_.count(key)) {
    lru_.emplace_front(key, png);
    index_[key] = lru_.begin();
    if (lru_.size() > kCapacity) {
      index_.erase(lru_.back().first);
      lru_.pop_back();
    }
  }
  return png;
}

}  // namespace dualtune::serve

// OpenCV image decoding shared by the ImageFolder and Market-1501 readers.
#include "dualtune/data/image_decode.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "dualtune/util/error.h"

namespace dualtune::data {

bool has_image_extension(const std::string& filename) {
  std::string ext = std::filesystem::path(filename).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp";
}

Image decode_image_file(const std::string& path) {
  cv::Mat m;
  try {
    m = cv::imread(path, cv::IMREAD_ANYCOLOR);  // 8-bit; 1 channel if the file is gray, else 3
  } catch (const cv::Exception& e) {
    DT_THROW("image ", path, ": cannot decode (", e.what(), ")");
  }
  DT_CHECK(!m.empty(), "image ", path, ": cannot read or decode (expected a jpg/jpeg/png/bmp image)");
  if (m.depth() != CV_8U) m.convertTo(m, CV_8U);
  cv::Mat out;
  switch (m.channels()) {
    case 1: out = m; break;
    case 3: cv::cvtColor(m, out, cv::COLOR_BGR2RGB); break;
    case 4: cv::cvtColor(m, out, cv::COLOR_BGRA2RGB); break;
    default: DT_THROW("image ", path, ": expected 1, 3 or 4 channels, found ", m.channels());
  }
  if (!out.isContinuous()) out = out.clone();
  Image img;
  img.h = out.rows;
  img.w = out.cols;
  img.c = out.channels();
  img.pixels.assign(out.data, out.data + out.total() * out.elemSize());
  return img;
}

}  // namespace dualtune::data

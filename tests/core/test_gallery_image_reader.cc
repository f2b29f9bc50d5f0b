// gallery::ImageReader: an item's image from a dataset source (found by key) or from a
// file key, and a clear error for every way it can be missing.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <opencv2/imgcodecs.hpp>

#include "dualtune/data/dataset.h"
#include "dualtune/gallery/image_reader.h"
#include "dualtune/util/error.h"
#include "gallery_fixtures.h"

using namespace dualtune;
using namespace dualtune::gallery;
namespace fs = std::filesystem;

namespace {

using dualtune::gallery::fixtures::error_of;

}  // namespace

TEST(ImageReader, ReadsDatasetItemsByKeyAndFilesByPath) {
  const auto dir = fixtures::temp_dir("image_reader");
  fs::create_directories(dir + "/imgs/g/cat");
  cv::Mat a(5, 7, CV_8UC1, cv::Scalar(17));
  a.at<uint8_t>(2, 3) = 200;
  ASSERT_TRUE(cv::imwrite(dir + "/imgs/g/cat/a.png", a));
  const std::string folder = R"({"format":"image_folder","root":")" + dir + R"(/imgs","split":"g"})";
  data::DatasetSpec spec;
  spec.format = "image_folder";
  spec.root = dir + "/imgs";
  spec.split = "g";
  const std::string key = data::open_dataset(spec)->path(0);

  ImageReader reader;
  const auto img = reader.read({1, key, folder});
  ASSERT_EQ(img.h, 5);
  ASSERT_EQ(img.w, 7);
  ASSERT_EQ(img.c, 1);
  EXPECT_EQ(img.pixels[2 * 7 + 3], 200);
  EXPECT_EQ(img.pixels[0], 17);
  const auto file = reader.read({2, dir + "/imgs/g/cat/a.png", R"({"format":"files"})"});
  EXPECT_EQ(file.pixels, img.pixels);

  EXPECT_NE(error_of([&] { reader.read({3, "elsewhere.png", folder}); }).find("missing image"), std::string::npos);
  EXPECT_NE(error_of([&] { reader.read({4, "k", ""}); }).find("no image source recorded"), std::string::npos);
  std::ofstream(dir + "/bad.png") << "not a png";
  EXPECT_NE(error_of([&] { reader.read({5, dir + "/bad.png", R"({"format":"files"})"}); }).find(dir + "/bad.png"),
            std::string::npos);
  EXPECT_NE(error_of([&] { reader.read({6, "k", "{not json"}); }).find("not valid JSON"), std::string::npos);
}

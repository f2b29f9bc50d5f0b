#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <opencv2/imgcodecs.hpp>

#include "dualtune/data/dataset.h"
#include "dualtune/data/image_folder.h"
#include "dualtune/util/error.h"

namespace fs = std::filesystem;
using namespace dualtune::data;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("dt_imgfolder_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const dualtune::Error& e) {
    return e.what();
  }
  return "<no error>";
}

// root/cat/{a.png (2x3 colour), b.png}, root/dog/c.png (gray), root/dog/notes.txt
void make_tree(const fs::path& root) {
  fs::create_directories(root / "cat");
  fs::create_directories(root / "dog");
  cv::Mat color(2, 3, CV_8UC3);
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 3; ++x) color.at<cv::Vec3b>(y, x) = cv::Vec3b(10 * x, 100 + y, 200);  // B, G, R
  ASSERT_TRUE(cv::imwrite((root / "cat" / "a.png").string(), color));
  ASSERT_TRUE(cv::imwrite((root / "cat" / "b.png").string(), color));
  cv::Mat gray(2, 2, CV_8UC1);
  gray.at<uint8_t>(0, 0) = 1;
  gray.at<uint8_t>(0, 1) = 2;
  gray.at<uint8_t>(1, 0) = 3;
  gray.at<uint8_t>(1, 1) = 250;
  ASSERT_TRUE(cv::imwrite((root / "dog" / "c.png").string(), gray));
  std::ofstream(root / "dog" / "notes.txt") << "not an image";
}

}  // namespace

TEST(ImageFolder, ReadsClassesFilesAndPixels) {
  TempDir t;
  make_tree(t.path);
  ImageFolderDataset ds(t.path.string());
  ASSERT_EQ(ds.size(), 3u);
  EXPECT_EQ(ds.classes().names(), (std::vector<std::string>{"cat", "dog"}));
  EXPECT_EQ(ds.label(0), 0);
  EXPECT_EQ(ds.label(1), 0);
  EXPECT_EQ(ds.label(2), 1);
  EXPECT_EQ(ds.path(0), (t.path / "cat" / "a.png").string());
  EXPECT_EQ(ds.path(2), (t.path / "dog" / "c.png").string());

  const Image a = ds.image(0);
  ASSERT_EQ(a.h, 2);
  ASSERT_EQ(a.w, 3);
  ASSERT_EQ(a.c, 3);
  // pixel (y=1, x=2): written as BGR (20, 101, 200) -> RGB (200, 101, 20)
  const size_t o = (1 * 3 + 2) * 3;
  EXPECT_EQ(a.pixels[o + 0], 200);
  EXPECT_EQ(a.pixels[o + 1], 101);
  EXPECT_EQ(a.pixels[o + 2], 20);

  const Image c = ds.image(2);
  ASSERT_EQ(c.c, 1);
  EXPECT_EQ(c.pixels, (std::vector<uint8_t>{1, 2, 3, 250}));
}

TEST(ImageFolder, OpenDatasetUsesSplitSubfolderAndSubset) {
  TempDir t;
  make_tree(t.path / "train");
  auto ds = open_dataset(DatasetSpec{"image_folder", t.path.string(), "train", "dog", 0});
  ASSERT_EQ(ds->size(), 1u);
  EXPECT_EQ(ds->classes().names(), (std::vector<std::string>{"dog"}));
  EXPECT_EQ(ds->label(0), 0);
  EXPECT_EQ(ds->image(0).pixels.back(), 250);
}

TEST(ImageFolder, UnreadableImageNamesTheFile) {
  TempDir t;
  make_tree(t.path);
  const std::string bad = (t.path / "dog" / "z.jpg").string();
  std::ofstream(bad) << "this is not a jpeg";
  ImageFolderDataset ds(t.path.string());
  ASSERT_EQ(ds.size(), 4u);
  const std::string msg = [&] {
    try {
      ds.image(3);
    } catch (const dualtune::Error& e) {
      return std::string(e.what());
    }
    return std::string("<no error>");
  }();
  EXPECT_NE(msg.find(bad), std::string::npos) << msg;
}

TEST(ImageFolder, EmptyClassAndNoClassesAreErrors) {
  TempDir t;
  const std::string none = error_of([&] { ImageFolderDataset ds(t.path.string()); });
  EXPECT_NE(none.find("no class directories"), std::string::npos) << none;
  make_tree(t.path);
  fs::create_directories(t.path / "empty");
  std::ofstream(t.path / "empty" / "readme.txt") << "x";
  const std::string empty = error_of([&] { ImageFolderDataset ds(t.path.string()); });
  EXPECT_NE(empty.find((t.path / "empty").string()), std::string::npos) << empty;
  EXPECT_NE(empty.find("has no images"), std::string::npos) << empty;
  const std::string missing = error_of([&] { ImageFolderDataset ds((t.path / "nope").string()); });
  EXPECT_NE(missing.find("nope"), std::string::npos) << missing;
}

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include <opencv2/imgcodecs.hpp>

#include "dualtune/data/dataset.h"
#include "dualtune/data/market1501.h"
#include "dualtune/util/error.h"

namespace fs = std::filesystem;
using namespace dualtune::data;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const dualtune::Error& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace

TEST(MarketName, ParsesAllFields) {
  const MarketName m = parse_market_name("/data/market/bounding_box_train/0002_c1s1_000451_03.jpg");
  EXPECT_EQ(m.pid, 2);
  EXPECT_EQ(m.pid_text, "0002");
  EXPECT_EQ(m.cam, 1);
  EXPECT_EQ(m.seq, 1);
  EXPECT_EQ(m.frame, 451);
  EXPECT_EQ(m.index, 3);
  const MarketName n = parse_market_name("1501_c6s4_001877_00.jpg");
  EXPECT_EQ(n.pid, 1501);
  EXPECT_EQ(n.cam, 6);
  EXPECT_EQ(n.seq, 4);
}

TEST(MarketName, JunkAndDistractors) {
  const MarketName junk = parse_market_name("-1_c3s2_012345_01.jpg");
  EXPECT_EQ(junk.pid, -1);
  EXPECT_EQ(junk.cam, 3);
  const MarketName d = parse_market_name("0000_c1s1_000000_01.jpg");
  EXPECT_EQ(d.pid, 0);
  EXPECT_EQ(d.pid_text, "0000");
}

TEST(MarketName, RejectsMalformedNames) {
  for (const char* bad : {"002_c1s1_000451_03.jpg", "0002_1s1_000451_03.jpg", "0002_c1_000451_03.jpg",
                          "0002_c1s1_03.jpg", "0002_c1s1_000451_03.txt", "abcd_c1s1_000451_03.jpg",
                          "-2_c1s1_000451_03.jpg", "0002_c1s1_000451_03", "0002_cxs1_000451_03.jpg"}) {
    const std::string msg = error_of([&] { parse_market_name(bad); });
    EXPECT_NE(msg.find(bad), std::string::npos) << bad << ": " << msg;
    EXPECT_NE(msg.find("PPPP_cCsS_FFFFFF_NN.jpg"), std::string::npos) << msg;
  }
}

TEST(Market1501, ReadsSplitLabelsAndCameras) {
  const fs::path root = fs::temp_directory_path() / ("dt_market_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "bounding_box_test");
  fs::create_directories(root / "query");
  const cv::Mat img(4, 2, CV_8UC3, cv::Scalar(1, 2, 3));
  for (const char* n : {"0007_c2s1_000100_01.jpg", "0002_c1s1_000451_03.jpg", "-1_c3s1_000001_01.jpg",
                        "0000_c4s1_000002_01.jpg", "0002_c5s2_000010_01.jpg"})
    ASSERT_TRUE(cv::imwrite((root / "bounding_box_test" / n).string(), img));
  auto ds = open_dataset(DatasetSpec{"market1501", root.string(), "gallery", "all", 0});
  // sorted files: -1_..., 0000_..., 0002_c1, 0002_c5, 0007_c2
  ASSERT_EQ(ds->size(), 5u);
  EXPECT_EQ(ds->classes().names(), (std::vector<std::string>{"0000", "0002", "0007"}));
  EXPECT_EQ(ds->label(0), -1);  // junk
  EXPECT_EQ(ds->label(1), 0);   // distractor class "0000"
  EXPECT_EQ(ds->label(2), 1);
  EXPECT_EQ(ds->label(3), 1);
  EXPECT_EQ(ds->label(4), 2);
  EXPECT_EQ(ds->camera(0), 3);
  EXPECT_EQ(ds->camera(3), 5);
  EXPECT_EQ(ds->image(4).c, 3);
  EXPECT_NE(error_of([&] { open_dataset(DatasetSpec{"market1501", root.string(), "query", "all", 0}); })
                .find("found none"),
            std::string::npos);
  EXPECT_NE(error_of([&] { open_dataset(DatasetSpec{"market1501", root.string(), "val", "all", 0}); })
                .find("found 'val'"),
            std::string::npos);
  auto sub = open_dataset(DatasetSpec{"market1501", root.string(), "gallery", "2", 0});
  EXPECT_EQ(sub->size(), 2u);
  EXPECT_EQ(sub->camera(1), 5);
  fs::remove_all(root);
}

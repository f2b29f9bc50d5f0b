// The service's small parts on their own: the bearer token (file rules, header form,
// comparison), latency percentiles (nearest rank, by hand), thumbnails and the metrics
// window.
#include <gtest/gtest.h>

#include <fstream>

#include <opencv2/imgcodecs.hpp>

#include "dualtune/serve/metrics.h"
#include "dualtune/serve/thumbnails.h"
#include "dualtune/serve/token.h"
#include "dualtune/util/error.h"
#include "gallery_fixtures.h"

using namespace dualtune;
using namespace dualtune::serve;

TEST(Token, ReadFromAFileTrimmedAndChecked) {
  const auto dir = gallery::fixtures::temp_dir("token");
  std::ofstream(dir + "/ok") << "  s3cret-token-0123456789\n";
  EXPECT_EQ(read_token_file(dir + "/ok"), "s3cret-token-0123456789");
  std::ofstream(dir + "/short") << "abc\n";
  try {
    read_token_file(dir + "/short");
    FAIL() << "a 3-character token was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected a token of at least 16 characters, found 3"), std::string::npos);
  }
  std::ofstream(dir + "/space") << "two words in one token file";
  EXPECT_THROW(read_token_file(dir + "/space"), Error);
  EXPECT_THROW(read_token_file(dir + "/missing"), Error);
}

TEST(Token, BearerHeaderAndComparison) {
  EXPECT_EQ(bearer_token("Bearer abc"), "abc");
  EXPECT_EQ(bearer_token("bearer   abc"), "abc");
  EXPECT_EQ(bearer_token("Basic abc"), "");
  EXPECT_EQ(bearer_token("Bearer "), "");
  EXPECT_EQ(bearer_token(""), "");
  const std::string secret = "s3cret-token-0123456789";
  EXPECT_TRUE(tokens_equal(secret, secret));
  EXPECT_FALSE(tokens_equal(secret + "x", secret));
  EXPECT_FALSE(tokens_equal(secret.substr(0, 10), secret));
  EXPECT_FALSE(tokens_equal(secret + secret, secret));  // cyclic comparison must not accept a repetition
  EXPECT_FALSE(tokens_equal("", secret));
  EXPECT_FALSE(tokens_equal("", ""));
  std::string last = secret;
  last.back() = 'X';
  EXPECT_FALSE(tokens_equal(last, secret));
}

TEST(Metrics, NearestRankPercentilesByHand) {
  std::vector<double> v{5, 1, 4, 2, 3, 10, 9, 8, 7, 6};  // 1..10
  EXPECT_EQ(nearest_rank(v, 0.5), 5);   // ceil(0.5·10) = 5th smallest
  EXPECT_EQ(nearest_rank(v, 0.9), 9);
  EXPECT_EQ(nearest_rank(v, 0.99), 10);  // ceil(9.9) = 10th
  EXPECT_EQ(nearest_rank(v, 0.01), 1);
  std::vector<double> one{7};
  EXPECT_EQ(nearest_rank(one, 0.5), 7);
}

TEST(Metrics, CountsPerRouteAndKeepsTheLastWindowOfLatencies) {
  Metrics m;
  for (int i = 1; i <= 100; ++i) m.record("GET /a", 200, i);
  m.record("GET /a", 404, 0.5);
  m.record("POST /b", 500, 3);
  const auto j = m.to_json();
  ASSERT_EQ(j["routes"].size(), 2u);
  EXPECT_EQ(j["routes"][0]["route"], "GET /a");
  EXPECT_EQ(j["routes"][0]["requests"], 101);
  EXPECT_EQ(j["routes"][0]["errors_4xx"], 1);
  EXPECT_EQ(j["routes"][0]["p50_ms"], 50);   // 0.5, 1..100: the 51st smallest is 50
  EXPECT_EQ(j["routes"][0]["p99_ms"], 99);   // ceil(0.99·101) = 100th smallest
  EXPECT_EQ(j["routes"][0]["max_ms"], 100);
  EXPECT_EQ(j["routes"][1]["errors_5xx"], 1);
  EXPECT_EQ(j["total"]["requests"], 102);
  // Past the window, only the most recent latencies count.
  Metrics w;
  for (size_t i = 0; i < Metrics::kWindow; ++i) w.record("r", 200, 1000);
  for (size_t i = 0; i < Metrics::kWindow; ++i) w.record("r", 200, 1);
  EXPECT_EQ(w.to_json()["routes"][0]["max_ms"], 1);
  EXPECT_EQ(w.to_json()["routes"][0]["requests"], 2 * Metrics::kWindow);
}

TEST(Thumbnails, ShrinkTheLongerSideKeepColoursAndNeverEnlarge) {
  data::Image img;
  img.h = 40, img.w = 80, img.c = 3;
  img.pixels.assign(40 * 80 * 3, 0);
  for (size_t p = 0; p < img.pixels.size(); p += 3) img.pixels[p] = 200;  // pure red (RGB)
  const std::string png = encode_thumbnail(img, 20);
  const cv::Mat m = cv::imdecode(std::vector<uint8_t>(png.begin(), png.end()), cv::IMREAD_COLOR);
  ASSERT_EQ(m.cols, 20);
  ASSERT_EQ(m.rows, 10);
  EXPECT_EQ(m.at<cv::Vec3b>(5, 5), cv::Vec3b(0, 0, 200));  // OpenCV reads BGR: red stays red
  const std::string same = encode_thumbnail(img, 500);
  EXPECT_EQ(cv::imdecode(std::vector<uint8_t>(same.begin(), same.end()), cv::IMREAD_COLOR).cols, 80);
}

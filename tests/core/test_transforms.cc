#include <gtest/gtest.h>

#include "dualtune/data/transforms.h"
#include "dualtune/util/error.h"

using namespace dualtune::data;

namespace {

Image gray(int h, int w) {
  Image img{h, w, 1, {}};
  for (int i = 0; i < h * w; ++i) img.pixels.push_back(uint8_t(10 * i));
  return img;
}

}  // namespace

TEST(Transform, NormalizesByHand) {
  TransformOptions o;
  o.height = 2;
  o.width = 2;
  o.mean = {0.5f};
  o.std = {0.25f};
  std::mt19937_64 rng(0);
  std::vector<float> out(4);
  apply_transform(gray(2, 2), o, rng, out.data());
  // pixels 0, 10, 20, 30 -> (p/255 - 0.5) / 0.25
  EXPECT_NEAR(out[0], -2.0f, 1e-5);
  EXPECT_NEAR(out[1], (10.0f / 255 - 0.5f) / 0.25f, 1e-5);
  EXPECT_NEAR(out[3], (30.0f / 255 - 0.5f) / 0.25f, 1e-5);
}

TEST(Transform, RgbPerChannelAndGrayToRgb) {
  Image rgb{1, 1, 3, {255, 0, 51}};
  TransformOptions o;
  o.height = o.width = 1;
  o.channels = 3;
  o.mean = {0.f, 0.f, 0.2f};
  o.std = {1.f, 2.f, 0.5f};
  std::mt19937_64 rng(0);
  float out[3];
  apply_transform(rgb, o, rng, out);
  EXPECT_NEAR(out[0], 1.0f, 1e-6);
  EXPECT_NEAR(out[1], 0.0f, 1e-6);
  EXPECT_NEAR(out[2], 0.0f, 1e-5);  // (0.2 - 0.2) / 0.5
  Image g{1, 1, 1, {51}};
  apply_transform(g, o, rng, out);
  EXPECT_NEAR(out[0], 0.2f, 1e-6);
  EXPECT_NEAR(out[1], 0.1f, 1e-6);
  TransformOptions one;
  one.height = one.width = 1;
  one.mean = {0.f};
  one.std = {1.f};
  apply_transform(Image{1, 1, 3, {100, 100, 100}}, one, rng, out);
  EXPECT_NEAR(out[0], 100.f / 255, 1e-6);
}

TEST(Transform, FlipMirrorsRows) {
  TransformOptions o;
  o.height = 2;
  o.width = 3;
  o.mean = {0.f};
  o.std = {1.f};
  o.train = true;
  o.flip = true;
  o.pad = 0;
  const Image img = gray(2, 3);  // rows: 0 10 20 / 30 40 50
  bool saw_flip = false, saw_plain = false;
  for (uint64_t seed = 0; seed < 32; ++seed) {
    std::mt19937_64 rng(seed);
    float out[6];
    apply_transform(img, o, rng, out);
    if (std::abs(out[0] * 255 - 20) < 1e-3) {
      saw_flip = true;
      EXPECT_NEAR(out[1] * 255, 10, 1e-3);
      EXPECT_NEAR(out[2] * 255, 0, 1e-3);
      EXPECT_NEAR(out[3] * 255, 50, 1e-3);
      EXPECT_NEAR(out[5] * 255, 30, 1e-3);
    } else {
      saw_plain = true;
      EXPECT_NEAR(out[0] * 255, 0, 1e-3);
      EXPECT_NEAR(out[5] * 255, 50, 1e-3);
    }
  }
  EXPECT_TRUE(saw_flip);
  EXPECT_TRUE(saw_plain);
}

TEST(Transform, PadCropKeepsSizeAndShiftsWithZeros) {
  TransformOptions o;
  o.height = 4;
  o.width = 4;
  o.mean = {0.f};
  o.std = {1.f};
  o.train = true;
  o.flip = false;
  o.pad = 2;
  Image img{4, 4, 1, std::vector<uint8_t>(16, 255)};
  bool shifted = false;
  for (uint64_t seed = 0; seed < 16; ++seed) {
    std::mt19937_64 rng(seed);
    std::vector<float> out(16, -1.f);
    apply_transform(img, o, rng, out.data());
    int ones = 0, zeros = 0;
    for (float v : out) (v == 1.f ? ones : zeros) += (v == 1.f || v == 0.f);
    EXPECT_EQ(ones + zeros, 16);  // every value is an image pixel or a pad zero
    EXPECT_GE(ones, 4);           // a shift of at most 2 keeps a 2x2 overlap
    if (zeros > 0) shifted = true;
  }
  EXPECT_TRUE(shifted);
}

TEST(Transform, TestTimeIsDeterministicAndResizes) {
  TransformOptions o;
  o.height = 4;
  o.width = 4;
  o.mean = {0.f};
  o.std = {1.f};
  o.train = false;
  o.pad = 2;
  o.erasing = 1.0f;
  Image img{2, 2, 1, {100, 100, 100, 100}};
  std::mt19937_64 a(1), b(2);
  std::vector<float> x(16), y(16);
  apply_transform(img, o, a, x.data());
  apply_transform(img, o, b, y.data());
  EXPECT_EQ(x, y);
  for (float v : x) EXPECT_NEAR(v, 100.f / 255, 1e-5);
}

TEST(Transform, RandomErasingZeroesARectangle) {
  TransformOptions o;
  o.height = o.width = 20;
  o.mean = {0.f};
  o.std = {1.f};
  o.train = true;
  o.flip = false;
  o.erasing = 1.0f;
  Image img{20, 20, 1, std::vector<uint8_t>(400, 255)};
  std::mt19937_64 rng(3);
  std::vector<float> out(400);
  apply_transform(img, o, rng, out.data());
  int zeros = 0, y0 = 99, y1 = -1, x0 = 99, x1 = -1;
  for (int y = 0; y < 20; ++y)
    for (int x = 0; x < 20; ++x)
      if (out[size_t(y * 20 + x)] == 0.f) {
        ++zeros;
        y0 = std::min(y0, y), y1 = std::max(y1, y), x0 = std::min(x0, x), x1 = std::max(x1, x);
      }
  ASSERT_GT(zeros, 0);
  EXPECT_EQ(zeros, (y1 - y0 + 1) * (x1 - x0 + 1));  // a filled rectangle
  EXPECT_GE(zeros, int(0.02 * 400) - 4);
  EXPECT_LE(zeros, int(0.33 * 400) + 20);
}

TEST(Transform, RejectsMismatchedMeanStd) {
  TransformOptions o;
  o.channels = 3;
  std::mt19937_64 rng(0);
  std::vector<float> out(3 * 28 * 28);
  EXPECT_THROW(apply_transform(gray(28, 28), o, rng, out.data()), dualtune::Error);
}

// apply_transform: resize -> pad+crop -> flip -> [0,1] -> normalize -> random erasing.
// Random erasing follows Zhong et al., "Random Erasing Data Augmentation" (AAAI 2020):
// with probability p pick a rectangle of area 2%..33% of the image and aspect ratio
// 0.3..3.3 (both drawn uniformly, as in the paper), retrying up to 100 times until it fits, and fill it with 0 (after normalisation,
// i.e. the dataset mean).
#include "dualtune/data/transforms.h"

#include <cmath>

#include <opencv2/imgproc.hpp>

#include "dualtune/data/random.h"
#include "dualtune/util/error.h"

namespace dualtune::data {
namespace {

cv::Mat convert_channels(const cv::Mat& src, int64_t want) {
  if (src.channels() == want) return src;
  cv::Mat dst;
  if (src.channels() == 1 && want == 3) {
    cv::cvtColor(src, dst, cv::COLOR_GRAY2RGB);
  } else if (src.channels() == 3 && want == 1) {
    cv::cvtColor(src, dst, cv::COLOR_RGB2GRAY);
  } else {
    DT_THROW("transform: cannot convert an image with ", src.channels(), " channels to ", want, " channels");
  }
  return dst;
}

}  // namespace

void apply_transform(const Image& img, const TransformOptions& opt, std::mt19937_64& rng, float* out) {
  const int64_t C = opt.channels, H = opt.height, W = opt.width;
  DT_CHECK(C >= 1 && H >= 1 && W >= 1, "transform: expected positive output size, found ", C, "x", H, "x", W);
  DT_CHECK(static_cast<int64_t>(opt.mean.size()) == C && static_cast<int64_t>(opt.std.size()) == C,
           "transform: expected ", C, " mean and std values (one per channel), found ", opt.mean.size(), " and ",
           opt.std.size());
  DT_CHECK(img.h > 0 && img.w > 0 && (img.c == 1 || img.c == 3) &&
               img.pixels.size() == size_t(img.h) * size_t(img.w) * size_t(img.c),
           "transform: expected an h x w x {1,3} image with h*w*c bytes, found ", img.h, "x", img.w, "x", img.c, " with ",
           img.pixels.size(), " bytes");

  cv::Mat m(img.h, img.w, CV_8UC(img.c), const_cast<uint8_t*>(img.pixels.data()));
  m = convert_channels(m, C);
  if (m.rows != H || m.cols != W) {
    cv::Mat r;
    const bool shrink = m.rows > H || m.cols > W;
    cv::resize(m, r, cv::Size(static_cast<int>(W), static_cast<int>(H)), 0, 0,
               shrink ? cv::INTER_AREA : cv::INTER_LINEAR);
    m = r;
  }
  if (!m.isContinuous()) m = m.clone();
  const uint8_t* px = m.data;

  // Pad by `pad` zeros on every side, crop an H x W window at (oy, ox) of the padded
  // image: source pixel (y + oy - pad, x + ox - pad), zero outside.
  int64_t oy = 0, ox = 0, pad = 0;
  if (opt.train && opt.pad > 0) {
    pad = opt.pad;
    oy = static_cast<int64_t>(uniform_index(rng, uint64_t(2 * pad + 1)));
    ox = static_cast<int64_t>(uniform_index(rng, uint64_t(2 * pad + 1)));
  }
  const bool flip = opt.train && opt.flip && uniform01(rng) < 0.5;

  for (int64_t c = 0; c < C; ++c) {
    const float scale = 1.0f / (255.0f * opt.std[size_t(c)]);
    const float shift = opt.mean[size_t(c)] / opt.std[size_t(c)];
    float* plane = out + c * H * W;
    for (int64_t y = 0; y < H; ++y) {
      const int64_t sy = y + oy - pad;
      for (int64_t x = 0; x < W; ++x) {
        const int64_t cx = flip ? W - 1 - x : x;  // flip after the crop
        const int64_t sx = cx + ox - pad;
        const bool inside = sy >= 0 && sy < H && sx >= 0 && sx < W;
        const float v = inside ? float(px[(sy * W + sx) * C + c]) : 0.0f;
        plane[y * W + x] = v * scale - shift;
      }
    }
  }

  if (opt.train && opt.erasing > 0.0f && uniform01(rng) < opt.erasing) {
    const double area = double(H) * double(W);
    for (int attempt = 0; attempt < 100; ++attempt) {
      const double target = area * (0.02 + (0.33 - 0.02) * uniform01(rng));
      const double aspect = 0.3 + (3.3 - 0.3) * uniform01(rng);
      const int64_t eh = static_cast<int64_t>(std::lround(std::sqrt(target * aspect)));
      const int64_t ew = static_cast<int64_t>(std::lround(std::sqrt(target / aspect)));
      if (eh < 1 || ew < 1 || eh >= H || ew >= W) continue;
      const int64_t y0 = static_cast<int64_t>(uniform_index(rng, uint64_t(H - eh + 1)));
      const int64_t x0 = static_cast<int64_t>(uniform_index(rng, uint64_t(W - ew + 1)));
      for (int64_t c = 0; c < C; ++c)
        for (int64_t y = y0; y < y0 + eh; ++y)
          for (int64_t x = x0; x < x0 + ew; ++x) out[(c * H + y) * W + x] = 0.0f;
      break;
    }
  }
}

}  // namespace dualtune::data

#pragma once
// A tiny open-set glyph benchmark in the generator's layout (data/glyph_benchmark.h):
// DIR/{train-old,train-new,test}/<class_hex>/<n>.png and DIR/manifest.json. Classes are
// named like Hangul code points (ac00, ac01, ...); train-new's first n_old classes are
// train-old's, with byte-identical files; test classes are the next n_test. Each image
// is 32×32 gray, white with a dark 8×8 square at a class-specific place and noise, so
// a model learns the training classes in one epoch. Shared by test_core and test_torch.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

namespace dualtune::testdata {

struct TinyGlyphs {
  int n_old = 4, n_new = 8, n_test = 4;
  int train_per_class = 24, test_per_class = 10;
};

inline std::string glyph_class_name(int c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04x", 0xac00 + c);
  return buf;
}

/// Writes the benchmark into dir (at most 12 classes in all: 4 × 3 square positions).
inline void write_tiny_glyphs(const std::string& dir, const TinyGlyphs& g = {}) {
  namespace fs = std::filesystem;
  std::mt19937 rng(3);
  auto draw = [&](int c) {
    cv::Mat img(32, 32, CV_8UC1);
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x) img.at<uint8_t>(y, x) = static_cast<uint8_t>(255 - rng() % 30);
    const int x0 = (c % 4) * 8, y0 = (c / 4) * 8 + 4;
    for (int y = y0; y < y0 + 8; ++y)
      for (int x = x0; x < x0 + 8; ++x) img.at<uint8_t>(y, x) = static_cast<uint8_t>(rng() % 40);
    return img;
  };
  nlohmann::json counts, splits;
  auto add_split = [&](const std::string& split, int first, int n, int per_class) {
    splits[split] = nlohmann::json::array();
    for (int c = first; c < first + n; ++c) {
      const std::string cls = glyph_class_name(c);
      fs::create_directories(dir + "/" + split + "/" + cls);
      for (int i = 0; i < per_class; ++i) {
        const std::string rel = "/" + cls + "/" + std::to_string(i) + ".png";
        if (split == "train-old") {
          fs::copy_file(dir + "/train-new" + rel, dir + "/" + split + rel, fs::copy_options::overwrite_existing);
        } else {
          cv::imwrite(dir + "/" + split + rel, draw(c));
        }
      }
      splits[split].push_back(cls);
    }
    counts[split] = {{"classes", n}, {"images", n * per_class}};
  };
  add_split("train-new", 0, g.n_new, g.train_per_class);
  add_split("train-old", 0, g.n_old, g.train_per_class);
  add_split("test", g.n_new, g.n_test, g.test_per_class);
  std::ofstream(dir + "/manifest.json") << nlohmann::json{{"generator", "tests/tiny_glyphs.h"},
                                                           {"counts", counts},
                                                           {"splits", splits}}
                                               .dump(1);
}

}  // namespace dualtune::testdata

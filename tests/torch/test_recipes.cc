// The shipped recipes at their real resolution, end to end through the CLI: an
// ImageNet-style ResNet-50 on an ImageFolder at 224 px and the Market-1501 bag of tricks
// at 256 × 128. Each starts from a torchvision-layout ResNet-50 state dict (random
// weights written here in torchvision's names, with its fc), trains one tiny epoch and
// extracts. Kept small: 8–16 images, batch 4–8, 2 threads.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>
#include <set>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "dualtune/features/npy.h"
#include "dualtune/models/embedding_model.h"
#include "dualtune/models/state_dict_file.h"
#include "tiny_data.h"

namespace fs = std::filesystem;
using namespace dualtune;

namespace {

const std::string kSource = DUALTUNE_SOURCE_DIR;

// An RGB image of class c: a class-specific colour with uniform noise.
void write_image(const std::string& path, int h, int w, int c, std::mt19937& rng) {
  cv::Mat img(h, w, CV_8UC3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      img.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<uint8_t>(60 * c + rng() % 40),
                                          static_cast<uint8_t>(200 - 40 * c + rng() % 40),
                                          static_cast<uint8_t>(rng() % 255));
  ASSERT_TRUE(cv::imwrite(path, img)) << path;
}

// torchvision.models.resnet50's state dict with random weights: dualtune's resnet50
// backbone uses torchvision's module names, plus torchvision's 1000-way fc. Returns the
// backbone names written (what model.init must load).
std::set<std::string> write_torchvision_resnet50(const std::string& path) {
  torch::manual_seed(1234);
  models::ModelSpec spec;
  spec.backbone = "resnet50";
  spec.in_channels = 3;
  spec.embedding_dim = 0;
  spec.num_classes = 2;
  models::EmbeddingModel net(spec);
  models::NamedTensors tensors;
  std::set<std::string> names;
  for (const auto& p : net->backbone->named_parameters()) tensors.emplace_back(p.key(), p.value().detach());
  for (const auto& b : net->backbone->named_buffers()) tensors.emplace_back(b.key(), b.value());
  for (const auto& [name, t] : tensors) names.insert(name);
  tensors.emplace_back("fc.weight", torch::randn({1000, 2048}) * 0.01);
  tensors.emplace_back("fc.bias", torch::zeros({1000}));
  models::write_state_dict_file(path, tensors);
  return names;
}

// Trains `recipe` with `overrides`, extracts its test split, and checks the init report
// (every backbone tensor loaded, torchvision's fc ignored, nothing missing or mismatched)
// and the features (n × d, finite).
void run_recipe(const std::string& dir, const std::string& recipe, const std::string& overrides, int64_t test_items,
                int64_t dim) {
  const auto backbone = write_torchvision_resnet50(dir + "/resnet50.pth");
  const std::string bin = DUALTUNE_BINARY;
  int status = 0;
  const std::string run = dir + "/run";
  auto out = testdata::run_command(bin + " train -c " + kSource + "/configs/examples/" + recipe + " output_dir=" + run +
                                       " model.init=" + dir + "/resnet50.pth optim.epochs=1 threads=2 data.workers=0"
                                       " log_every=100 test_accuracy=false " + overrides,
                                   &status);
  ASSERT_EQ(status, 0) << out;
  const auto meta = nlohmann::json::parse(testdata::slurp(run + "/meta.json"));
  EXPECT_TRUE(meta["complete"].get<bool>());
  EXPECT_EQ(meta["epochs_done"], 1);
  EXPECT_EQ(meta["backbone"], "resnet50");
  EXPECT_EQ(meta["device"], "cpu");

  const auto report = nlohmann::json::parse(testdata::slurp(run + "/init_report.json"));
  EXPECT_EQ(report["kind"], "torch.save state dict");
  std::set<std::string> loaded;
  for (const auto& n : report["loaded"]) loaded.insert(n.get<std::string>());
  std::set<std::string> expected;
  for (const auto& n : backbone) expected.insert("backbone." + n);
  EXPECT_EQ(loaded, expected);
  EXPECT_EQ(report["missing"].size(), 0u) << report.dump();
  EXPECT_EQ(report["mismatched"].size(), 0u) << report.dump();
  std::set<std::string> unexpected;
  for (const auto& n : report["unexpected"]) unexpected.insert(n.get<std::string>());
  EXPECT_EQ(unexpected, (std::set<std::string>{"fc.bias", "fc.weight"}));

  out = testdata::run_command(bin + " extract --model " + run + " --out " + dir + "/feats --threads 2 --workers 0",
                              &status);
  ASSERT_EQ(status, 0) << out;
  const auto f = npy::load(dir + "/feats/features.npy");
  ASSERT_TRUE(f.is_float());
  ASSERT_EQ(f.shape, (std::vector<int64_t>{test_items, dim}));
  EXPECT_TRUE(std::all_of(f.f32.begin(), f.f32.end(), [](float v) { return std::isfinite(v); }));
  // Distinct images give distinct embeddings (the network is not collapsed to a constant).
  EXPECT_NE(std::vector<float>(f.f32.begin(), f.f32.begin() + dim), std::vector<float>(f.f32.begin() + dim, f.f32.begin() + 2 * dim));
}

}  // namespace

TEST(Recipes, ImagenetResnet50At224TrainsFromTorchvisionWeightsAndExtracts) {
  const std::string dir = testdata::temp_dir("recipe_imagenet");
  std::mt19937 rng(7);
  // 4 classes: 2 training images each (8 = one epoch of two batches of 4), 1 test image each.
  for (int c = 0; c < 4; ++c) {
    for (const auto& [split, n] : {std::pair<std::string, int>{"train", 2}, {"test", 1}}) {
      const std::string d = dir + "/data/" + split + "/class" + std::to_string(c);
      fs::create_directories(d);
      for (int i = 0; i < n; ++i) write_image(d + "/" + std::to_string(i) + ".png", 224, 224, c, rng);
    }
  }
  run_recipe(dir, "imagenet_resnet50_224.yml", "data.root=" + dir + "/data optim.batch_size=4", 4, 512);
  fs::remove_all(dir);
}

TEST(Recipes, Market1501BagOfTricksAt256x128TrainsFromTorchvisionWeightsAndExtracts) {
  const std::string dir = testdata::temp_dir("recipe_market");
  std::mt19937 rng(8);
  // 4 identities × 2 cameras × 2 frames in bounding_box_train (one P × K = 2 × 4 batch
  // per 8 images), 1 image per identity in the gallery, names PPPP_cCsS_FFFFFF_NN.jpg.
  for (const char* sub : {"bounding_box_train", "bounding_box_test", "query"}) fs::create_directories(dir + "/data/" + sub);
  char name[64];
  for (int id = 1; id <= 4; ++id) {
    for (int cam = 1; cam <= 2; ++cam)
      for (int f = 0; f < 2; ++f) {
        std::snprintf(name, sizeof name, "%04d_c%ds1_%06d_01.jpg", id, cam, 100 * id + f);
        write_image(dir + "/data/bounding_box_train/" + name, 256, 128, id - 1, rng);
      }
    std::snprintf(name, sizeof name, "%04d_c3s1_%06d_01.jpg", id, 900 + id);
    write_image(dir + "/data/bounding_box_test/" + name, 256, 128, id - 1, rng);
    write_image(dir + "/data/query/" + name, 256, 128, id - 1, rng);
  }
  run_recipe(dir, "market1501_resnet50_bot.yml", "data.root=" + dir + "/data data.p=2 data.k=4 optim.batch_size=8", 4,
             2048);
  fs::remove_all(dir);
}

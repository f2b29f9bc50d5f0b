// dualtune export: the network rebuilt in Python from the export
// (python/dualtune_models.py, run by Debian's python3-torch through
// tests/scripts/export_features.py) embeds the test images like `dualtune extract` to
// 1e-5, for a convnet with a projection and a ResNet-18 without one; the export opens as a
// model wherever a run does (extract, old.path of a compatible training) with the same
// embeddings; its classifier.npy and classes.json are the run's; a bad --out or a run
// without checkpoint is refused with nothing written.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "dualtune/engine/checkpoint.h"
#include "dualtune/engine/open_old_model.h"
#include "dualtune/features/feature_set.h"
#include "dualtune/features/npy.h"
#include "tiny_data.h"

using namespace dualtune;
namespace fs = std::filesystem;

namespace {

class Export : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir = testdata::temp_dir("export");
    testdata::write_tiny_idx(dir + "/data", 240, 50, 4);
    std::ofstream(dir + "/cfg.yml") << "data:\n  root: " << dir << "/data\n  workers: 0\n"
                                    << "optim:\n  epochs: 1\n  batch_size: 32\n"
                                    << "seed: 5\nthreads: 1\nlog_every: 100\ntest_accuracy: false\n";
  }
  static void TearDownTestSuite() { fs::remove_all(dir); }
  static std::string dualtune(const std::string& args, int* status) {
    return testdata::run_command(std::string(DUALTUNE_BINARY) + " " + args, status);
  }
  static std::string train(const std::string& name, const std::string& overrides) {
    int status = 0;
    const std::string run = dir + "/" + name;
    const auto out = dualtune("train -c " + dir + "/cfg.yml output_dir=" + run + " " + overrides, &status);
    EXPECT_EQ(status, 0) << out;
    return run;
  }
  /// Python's embeddings of the test images (IDX t10k) vs `dualtune extract --model RUN`.
  static void check_python_matches_extract(const std::string& run, int64_t dim) {
    int status = 0;
    const std::string exp = run + "_export", feats = run + "_feats", py = run + "_python.npy";
    auto out = dualtune("export --model " + run + " --out " + exp, &status);
    ASSERT_EQ(status, 0) << out;
    out = dualtune("extract --model " + run + " --out " + feats, &status);
    ASSERT_EQ(status, 0) << out;
    out = testdata::run_command("/usr/bin/python3 " + std::string(DUALTUNE_SOURCE_DIR) +
                                    "/tests/scripts/export_features.py " + DUALTUNE_SOURCE_DIR + " " + exp + " " + dir +
                                    "/data/t10k-images-idx3-ubyte " + py,
                                &status);
    ASSERT_EQ(status, 0) << "needs python3-torch (scripts/install_deps.sh)\n" << out;
    const auto fs = features::FeatureSet::load(feats);
    const auto p = npy::load(py);
    ASSERT_EQ(p.shape, (std::vector<int64_t>{50, dim}));
    ASSERT_EQ(fs.d, dim);
    double max_diff = 0, max_abs = 0;
    for (size_t i = 0; i < fs.features.size(); ++i) {
      max_diff = std::max(max_diff, std::abs(double(fs.features[i]) - double(p.f32[i])));
      max_abs = std::max(max_abs, std::abs(double(fs.features[i])));
    }
    EXPECT_LT(max_diff, 1e-5) << "largest |e| " << max_abs;
    EXPECT_GT(max_abs, 0.1) << "embeddings should not be trivially small";
    std::printf("python vs extract (%s): max |diff| %.3g, max |e| %.3g\n", run.c_str(), max_diff, max_abs);
  }
  static std::string dir;
};
std::string Export::dir;

}  // namespace

TEST_F(Export, PythonRebuildMatchesExtractConvnetWithProjection) {
  const auto run = train("convnet", "model.embedding_dim=16");
  check_python_matches_extract(run, 16);

  // The export's files: the run's classes and classifier, a description of the input.
  const std::string exp = run + "_export";
  for (const char* f : {"state_dict.pt", "model.json", "classes.json", "classifier.npy", "config.yml", "meta.json", "README.md"})
    EXPECT_TRUE(fs::exists(exp + "/" + f)) << f;
  EXPECT_FALSE(fs::exists(exp + ".tmp." + std::to_string(::getpid())));
  EXPECT_EQ(testdata::slurp(exp + "/classes.json"), testdata::slurp(run + "/classes.json"));
  const auto model = engine::load_run_model(run);
  const auto w = npy::load(exp + "/classifier.npy");
  ASSERT_EQ(w.shape, (std::vector<int64_t>{4, 16}));
  const auto expected = model->classifier->weight.contiguous();
  EXPECT_TRUE(torch::equal(torch::from_blob(const_cast<float*>(w.f32.data()), {4, 16}), expected));
  const auto j = nlohmann::json::parse(testdata::slurp(exp + "/model.json"));
  EXPECT_EQ(j["architecture"]["backbone"], "convnet-s");
  EXPECT_EQ(j["architecture"]["embedding_dim"], 16);
  EXPECT_EQ(j["architecture"]["backbone_width"], 128);
  EXPECT_EQ(j["architecture"]["projection"], true);
  EXPECT_EQ(j["input"]["height"], 28);
  EXPECT_NEAR(j["input"]["mean"][0].get<double>(), 0.2860, 1e-12);
  EXPECT_NEAR(j["input"]["std"][0].get<double>(), 0.3530, 1e-12);

  // The export is a model wherever a run is: the same features from extract, the same
  // old-model embeddings, and a compatible training against it.
  int status = 0;
  auto out = dualtune("extract --model " + exp + " --out " + run + "_feats_export", &status);
  ASSERT_EQ(status, 0) << out;
  EXPECT_EQ(testdata::slurp(run + "_feats_export/features.npy"), testdata::slurp(run + "_feats/features.npy"));
  const auto x = torch::randn({5, 1, 28, 28});
  EXPECT_TRUE(torch::equal(engine::open_old_model(exp)->embed(x), engine::open_old_model(run)->embed(x)));
  train("bct_on_export", "compat.method=bct old.path=" + exp + " model.backbone=convnet-m");
  EXPECT_TRUE(fs::exists(dir + "/bct_on_export/checkpoint.pt"));
}

TEST_F(Export, PythonRebuildMatchesExtractResnet18WithoutProjectionAndArcFace) {
  const auto run = train("resnet", "model.backbone=resnet18 model.embedding_dim=0 loss.type=arcface");
  check_python_matches_extract(run, 512);
  const auto j = nlohmann::json::parse(testdata::slurp(run + "_export/model.json"));
  EXPECT_EQ(j["architecture"]["projection"], false);
  EXPECT_EQ(j["architecture"]["classifier"]["normalized"], true);
}

TEST_F(Export, BadOutputOrRunIsRefusedWithNothingWritten) {
  const std::string busy = dir + "/busy";
  fs::create_directories(busy);
  std::ofstream(busy + "/keep.txt") << "user file";
  // A run directory without checkpoint: its config and classes only.
  const std::string unfinished = dir + "/unfinished";
  fs::create_directories(unfinished);
  fs::copy_file(dir + "/cfg.yml", unfinished + "/config.yml");
  int status = 0;
  auto out = dualtune("export --model " + unfinished + " --out " + dir + "/e1", &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("has no checkpoint.pt"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir + "/e1"));
  out = dualtune("export --model " + dir + "/data --out " + dir + "/e2", &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("is not a dualtune run directory"), std::string::npos) << out;

  const auto run = train("for_busy", "model.embedding_dim=8");
  out = dualtune("export --model " + run + " --out " + busy, &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("already exists and is not an empty directory"), std::string::npos) << out;
  EXPECT_EQ(testdata::slurp(busy + "/keep.txt"), "user file");
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

// The old model as an ONNX file (OpenCV DNN), against the same network exported as
// TorchScript (both made from one set of weights by
// tests/fixtures/onnx/make_onnx_fixture.py): the same embeddings to 1e-5, the same
// extracted features and prototypes, compatible training against it; a corrupt file
// and a network whose output is not B × D are clear errors.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "dualtune/config/config.h"
#include "dualtune/data/class_map.h"
#include "dualtune/engine/extract.h"
#include "dualtune/engine/open_old_model.h"
#include "dualtune/engine/prototypes.h"
#include "dualtune/engine/settings.h"
#include "dualtune/engine/trainer.h"
#include "dualtune/features/feature_set.h"
#include "dualtune/features/npy.h"
#include "dualtune/models/old_model.h"
#include "dualtune/util/error.h"
#include "tiny_data.h"

using namespace dualtune;

namespace {

std::string fixture(const std::string& name) { return std::string(DUALTUNE_SOURCE_DIR) + "/tests/fixtures/onnx/" + name; }

class OnnxOldModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir = testdata::temp_dir("onnx");
    testdata::write_tiny_idx(dir + "/data", 240, 60, 8);
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir); }
  /// The old model's classes: 0-4, like the demo's old model.
  static std::string classes() { return fixture("classes.json"); }
  static std::string run(const std::string& args, int* status) {
    return testdata::run_command(std::string(DUALTUNE_BINARY) + " " + args, status);
  }
  static std::string dir;
};
std::string OnnxOldModel::dir;

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

}  // namespace

TEST_F(OnnxOldModel, EmbeddingsMatchTheTorchScriptExportTo1e5) {
  auto onnx = engine::open_old_model(fixture("tiny.onnx"), classes());
  auto script = engine::open_old_model(fixture("tiny.pt"), classes());
  torch::manual_seed(3);
  for (int64_t batch : {1, 7, 64}) {  // the batch axis is dynamic in the export
    const auto x = torch::randn({batch, 1, 28, 28});
    const auto eo = onnx->embed(x), et = script->embed(x);
    ASSERT_EQ(eo.sizes(), (std::vector<int64_t>{batch, 8}));
    ASSERT_EQ(et.sizes(), eo.sizes());
    EXPECT_LT(max_abs_diff(eo, et), 1e-5) << "batch " << batch;
    EXPECT_GT(et.abs().max().item<double>(), 0.1);  // not a degenerate all-zero comparison
    EXPECT_FALSE(eo.requires_grad());
  }
  EXPECT_EQ(onnx->dim(), 8);
  EXPECT_EQ(onnx->classes().size(), 5u);
  EXPECT_NE(onnx->describe().find("ONNX"), std::string::npos);
  // state(): the weights OpenCV holds (convolution with the batch norm folded in, linear).
  int64_t weights = 0;
  for (const auto& t : onnx->state()) weights += t.numel();
  EXPECT_EQ(weights, 4 * 1 * 3 * 3 + 4 + 8 * 4 * 14 * 14 + 8);
}

TEST_F(OnnxOldModel, CorruptFileIsAClearErrorBeforeAnyWork) {
  const std::string bad = dir + "/garbage.onnx";
  std::ofstream(bad, std::ios::binary) << "\x08\x07 this is not an ONNX protobuf \xff\xfe";
  try {
    engine::open_old_model(bad, classes());
    FAIL() << "corrupt ONNX accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot load ONNX old model " + bad + " (expected an ONNX model file)"),
              std::string::npos)
        << e.what();
  }
  // Through the CLI: non-zero exit naming the file, before the first epoch.
  std::ofstream(dir + "/cfg.yml") << "data:\n  workers: 1\noptim:\n  epochs: 1\n";
  int status = 0;
  const auto out = run("train -c " + dir + "/cfg.yml data.root=" + dir + "/data compat.method=l2 old.path=" + bad +
                           " old.class_map=" + classes() + " output_dir=" + dir + "/bad_run threads=1",
                       &status);
  EXPECT_NE(status, 0) << out;
  EXPECT_NE(out.find("cannot load ONNX old model " + bad), std::string::npos) << out;
  EXPECT_EQ(out.find("epoch 1/"), std::string::npos) << out;
  // An ONNX old model without its class map.
  try {
    engine::open_old_model(fixture("tiny.onnx"));
    FAIL() << "ONNX old model without class map accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs its class map"), std::string::npos) << e.what();
  }
}

TEST_F(OnnxOldModel, OutputThatIsNotBxDIsAClearError) {
  auto m = engine::open_old_model(fixture("tiny_feature_map.onnx"), classes());
  try {
    m->embed(torch::randn({4, 1, 28, 28}));
    FAIL() << "a B × 4 × 14 × 14 output was accepted as an embedding";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ONNX old model " + fixture("tiny_feature_map.onnx") +
                                         " must return a B × D embedding (B = 4), returned shape [4, 4, 14, 14]"),
              std::string::npos)
        << e.what();
  }
  // An input the network cannot take (3 channels for a 1-channel convolution).
  auto good = engine::open_old_model(fixture("tiny.onnx"), classes());
  try {
    good->embed(torch::randn({2, 3, 28, 28}));
    FAIL() << "wrong channel count accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("failed on input [2, 3, 28, 28]"), std::string::npos) << e.what();
  }
}

TEST_F(OnnxOldModel, ExtractionAndPrototypesEqualTheTorchScriptOnes) {
  // The ONNX model through the CLI, as a user runs it ...
  int status = 0;
  auto out = run("extract --model " + fixture("tiny.onnx") + " --class-map " + classes() + " --root " + dir +
                     "/data --out " + dir + "/ex_onnx --threads 1 --workers 1",
                 &status);
  ASSERT_EQ(status, 0) << out;
  out = run("prototypes --old " + fixture("tiny.onnx") + " --class-map " + classes() + " --root " + dir +
                "/data --split train --out " + dir + "/pr_onnx --threads 1 --workers 1",
            &status);
  ASSERT_EQ(status, 0) << out;
  // ... against the TorchScript export run in this process, on the same images.
  const auto script = engine::embedder_for(fixture("tiny.pt"), classes());
  const auto cfg = config::Config::from_string("data:\n  root: " + dir + "/data\n");
  auto spec = engine::dataset_spec(cfg, "test");
  const auto transform = engine::transform_options(cfg, false);
  const auto b = engine::extract_features(script, data::open_dataset(spec), transform, 64, 1);
  const auto a = features::FeatureSet::load(dir + "/ex_onnx");
  ASSERT_EQ(a.n, 60);
  ASSERT_EQ(a.d, 8);
  ASSERT_EQ(a.features.size(), b.features.size());
  for (size_t i = 0; i < a.features.size(); ++i) ASSERT_NEAR(a.features[i], b.features[i], 1e-5) << i;
  EXPECT_EQ(a.labels, b.labels);
  spec.split = "train";
  const auto pb = engine::class_means(engine::extract_features(script, data::open_dataset(spec), transform, 64, 1));
  const auto pa = npy::load(dir + "/pr_onnx/prototypes.npy");
  EXPECT_EQ(pa.shape, (std::vector<int64_t>{8, 8}));  // every class of the training set, Do = 8
  ASSERT_EQ(pb.matrix.sizes(), (std::vector<int64_t>{8, 8}));
  const auto m = pb.matrix.contiguous();
  for (size_t i = 0; i < pa.f32.size(); ++i) ASSERT_NEAR(pa.f32[i], m.data_ptr<float>()[i], 1e-5) << i;
}

TEST_F(OnnxOldModel, TrainsACompatibleModelAgainstIt) {
  // Old classifier of 5 classes × Do = 8, as float64 (numpy's default) converted on load.
  std::vector<double> wo(5 * 8);
  for (size_t i = 0; i < wo.size(); ++i) wo[i] = 0.05 * static_cast<double>(i % 5) - 0.1;
  std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (5, 8), }";
  while ((10 + dict.size() + 1) % 64) dict += ' ';
  dict += '\n';
  std::ofstream(dir + "/wo.npy", std::ios::binary)
      << std::string("\x93NUMPY\x01\x00", 8) << static_cast<char>(dict.size()) << '\0' << dict
      << std::string(reinterpret_cast<const char*>(wo.data()), wo.size() * sizeof(double));
  for (const char* method : {"dual-tuning", "bct"}) {
    const std::string out = dir + "/run_" + method;
    auto cfg = config::Config::from_string(
        "data:\n  root: " + dir + "/data\n  workers: 1\nmodel:\n  embedding_dim: 16\n"
        "optim:\n  epochs: 1\n  batch_size: 32\nlog_every: 1000\nthreads: 1\noutput_dir: " + out + "\n",
        {std::string("compat.method=") + method, "old.path=" + fixture("tiny.onnx"), "old.class_map=" + classes(),
         "old.classifier=" + dir + "/wo.npy"});
    const auto r = engine::train(cfg, {false, true});
    EXPECT_EQ(r.epochs, 1) << method;
    EXPECT_TRUE(std::filesystem::exists(out + "/checkpoint.pt")) << method;
    // Prototypes of all 8 new classes in the ONNX model's 8-d space.
    EXPECT_EQ(npy::load(out + "/prototypes/prototypes.npy").shape, (std::vector<int64_t>{8, 8})) << method;
  }
}

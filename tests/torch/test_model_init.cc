// model.init against a torchvision-layout ResNet-18 made by PyTorch
// (tests/fixtures/torchvision/make_resnet18.py): from its state dict, its TorchScript
// file and a DataParallel checkpoint, the backbone reproduces PyTorch's feature map of
// a fixed input to 1e-5; wrong shapes, another architecture, the legacy format and a
// pickled module are clear errors naming what is wrong; init_strict false loads the
// matching subset and reports the rest; a training run records the init, writes its
// report, and --resume does not initialise again.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "dualtune/data/class_map.h"
#include "dualtune/engine/model_init.h"
#include "dualtune/features/npy.h"
#include "dualtune/models/embedding_model.h"
#include "dualtune/models/state_dict_file.h"
#include "dualtune/util/error.h"
#include "tiny_data.h"
#include "torchvision_fixture.h"

using namespace dualtune;
namespace fs = std::filesystem;

namespace {

torch::Tensor load_npy(const std::string& path) {
  const auto a = npy::load(path);
  return torch::from_blob(const_cast<float*>(a.f32.data()), a.shape).clone();
}

models::EmbeddingModel resnet18(int64_t in_channels) {
  models::ModelSpec spec;
  spec.backbone = "resnet18";
  spec.in_channels = in_channels;
  spec.embedding_dim = 64;
  spec.num_classes = 10;
  return models::EmbeddingModel(spec);
}

data::ClassMap ten_classes() {
  std::vector<std::string> names;
  for (int i = 0; i < 10; ++i) names.push_back(std::to_string(i));
  return data::ClassMap(names);
}

std::vector<std::string> backbone_names(models::EmbeddingModel& m) {
  std::vector<std::string> out;
  for (const auto& p : m->named_parameters()) if (p.key().rfind("backbone.", 0) == 0) out.push_back(p.key());
  for (const auto& b : m->named_buffers()) if (b.key().rfind("backbone.", 0) == 0) out.push_back(b.key());
  return out;
}

std::string init_error(const std::string& path, models::EmbeddingModel& m, bool strict = true) {
  try {
    engine::initialize_model({path, strict}, *m, ten_classes());
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

class ModelInit : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    dir = testdata::torchvision_fixture(&error);
    ASSERT_TRUE(error.empty()) << error;
  }
  std::string file(const std::string& name) const { return dir + "/" + name; }
  /// PyTorch's feature map vs the backbone's of the same input, eval mode.
  double feature_error(models::EmbeddingModel& m) const {
    torch::NoGradGuard no_grad;
    m->eval();
    const auto expected = load_npy(file("features.npy"));
    const auto got = m->backbone->forward(load_npy(file("input.npy")));
    EXPECT_EQ(got.sizes(), expected.sizes());
    return (got - expected).abs().max().item<double>();
  }
  std::string dir;
};

}  // namespace

TEST_F(ModelInit, TorchvisionStateDictReproducesPyTorchsFeatures) {
  auto m = resnet18(3);
  const double before = feature_error(m);
  const auto r = engine::initialize_model({file("resnet18_state_dict.pt"), true}, *m, ten_classes());
  EXPECT_EQ(r.kind, "torch.save state dict");
  // Every backbone tensor loads: 20 convolutions (weight), 20 BatchNorms (weight, bias,
  // running_mean, running_var, num_batches_tracked).
  const auto names = backbone_names(m);
  EXPECT_EQ(names.size(), 120u);
  EXPECT_EQ(r.loaded, names);
  EXPECT_TRUE(r.missing.empty());
  EXPECT_TRUE(r.mismatched.empty());
  EXPECT_EQ(r.unexpected, (std::vector<std::string>{"fc.weight", "fc.bias"}));  // torchvision's own classifier
  EXPECT_EQ(r.backbone_prefix, 120);
  EXPECT_EQ(r.module_prefix, 0);
  std::vector<std::string> fresh;
  for (const auto& f : r.fresh) fresh.push_back(f.name);
  EXPECT_EQ(fresh, (std::vector<std::string>{"proj.weight", "proj.bias", "neck.weight", "neck.bias",
                                             "classifier.weight", "neck.running_mean", "neck.running_var",
                                             "neck.num_batches_tracked"}));
  const double after = feature_error(m);
  EXPECT_GT(before, 1e-2) << "random weights should not already give PyTorch's features";
  EXPECT_LT(after, 1e-5);
  std::printf("backbone vs PyTorch feature map: max |diff| %.3g after init (%.3g before)\n", after, before);
  EXPECT_EQ(m->backbone->named_buffers()["bn1.num_batches_tracked"].item<int64_t>(), 123);
}

TEST_F(ModelInit, TorchScriptFileAndDataParallelCheckpointLoadTheSameWeights) {
  auto scripted = resnet18(3), ckpt = resnet18(3);
  const auto rs = engine::initialize_model({file("resnet18_scripted.pt"), true}, *scripted, ten_classes());
  EXPECT_EQ(rs.kind, "TorchScript module");
  EXPECT_EQ(rs.loaded.size(), 120u);
  EXPECT_LT(feature_error(scripted), 1e-5);

  const auto rc = engine::initialize_model({file("resnet18_checkpoint.pt"), true}, *ckpt, ten_classes());
  EXPECT_EQ(rc.loaded.size(), 120u);
  EXPECT_EQ(rc.module_prefix, 122);  // every name of nn.DataParallel(net).state_dict(), fc included
  EXPECT_EQ(rc.unexpected, (std::vector<std::string>{"module.fc.weight", "module.fc.bias"}));
  EXPECT_LT(feature_error(ckpt), 1e-5);
}

TEST_F(ModelInit, WrongInputChannelsIsAnErrorNamingTheTensorAndLeavesTheModelUntouched) {
  auto m = resnet18(1);
  const auto w = m->backbone->named_parameters()["layer1.0.conv1.weight"].clone();
  const std::string e = init_error(file("resnet18_state_dict.pt"), m);
  EXPECT_NE(e.find("does not fit resnet18 (in_channels 1)"), std::string::npos) << e;
  EXPECT_NE(e.find("1 shape mismatches (backbone.conv1.weight: source [64, 3, 7, 7], model [64, 1, 7, 7])"),
            std::string::npos) << e;
  EXPECT_NE(e.find("model.init_strict: false"), std::string::npos) << e;
  EXPECT_TRUE(torch::equal(m->backbone->named_parameters()["layer1.0.conv1.weight"], w)) << "nothing loads on error";
}

TEST_F(ModelInit, NonStrictLoadsTheMatchingSubsetAndReportsTheRest) {
  auto m = resnet18(1);
  const auto r = engine::initialize_model({file("resnet18_state_dict.pt"), false}, *m, ten_classes());
  EXPECT_EQ(r.loaded.size(), 119u);
  ASSERT_EQ(r.mismatched.size(), 1u);
  EXPECT_EQ(r.mismatched[0].name, "backbone.conv1.weight");
  EXPECT_EQ(r.mismatched[0].source, (std::vector<int64_t>{64, 3, 7, 7}));
  EXPECT_EQ(r.mismatched[0].model, (std::vector<int64_t>{64, 1, 7, 7}));
  // A loaded tensor equals the file's (read independently through TorchScript).
  torch::Tensor expected;
  for (const auto& [name, t] : models::read_state_dict_file(file("resnet18_scripted.pt")))
    if (name == "layer3.1.bn2.running_var") expected = t;
  ASSERT_TRUE(expected.defined());
  EXPECT_TRUE(torch::equal(m->backbone->named_buffers()["layer3.1.bn2.running_var"], expected));
  const auto j = r.to_json();
  EXPECT_EQ(j["mismatched"][0]["name"], "backbone.conv1.weight");
  EXPECT_EQ(j["loaded"].size(), 119u);
  EXPECT_EQ(j["strict"], false);
}

TEST_F(ModelInit, AnotherArchitecturesStateDictIsAnErrorNamingTheFirstMismatches) {
  // A ResNet-50 backbone saved by dualtune's own writer: same stem, other blocks.
  const std::string tmp = testdata::temp_dir("init_arch");
  {
    auto r50 = models::make_backbone("resnet50", 3);
    models::NamedTensors t;
    for (const auto& p : r50->named_parameters()) t.emplace_back(p.key(), p.value());
    for (const auto& b : r50->named_buffers()) t.emplace_back(b.key(), b.value());
    models::write_state_dict_file(tmp + "/r50.pt", t);
    auto convnet = models::make_backbone("convnet-m", 3);
    models::NamedTensors c;
    for (const auto& p : convnet->named_parameters()) c.emplace_back(p.key(), p.value());
    models::write_state_dict_file(tmp + "/convnet.pt", c);
  }
  auto m = resnet18(3);
  std::string e = init_error(tmp + "/r50.pt", m);
  EXPECT_NE(e.find("shape mismatches (backbone.layer1.0.conv1.weight: source [64, 64, 1, 1], model [64, 64, 3, 3]"),
            std::string::npos) << e;
  EXPECT_NE(e.find("source tensors with no place in the model (layer1.0.conv3.weight"), std::string::npos) << e;
  e = init_error(tmp + "/convnet.pt", m, /*strict=*/false);  // nothing matches: an error even when not strict
  EXPECT_NE(e.find("no tensor matches resnet18 (in_channels 3)"), std::string::npos) << e;
  EXPECT_NE(e.find("the source has block1.0.weight"), std::string::npos) << e;
  fs::remove_all(tmp);
}

TEST_F(ModelInit, LegacyFormatPickledModuleAndMissingFileAreClearErrors) {
  auto m = resnet18(3);
  std::string e = init_error(file("legacy.pt"), m);
  EXPECT_NE(e.find("legacy format"), std::string::npos) << e;
  e = init_error(file("whole_module.pt"), m);
  EXPECT_NE(e.find("pickled Python object of class torch.nn.modules.container.Sequential"), std::string::npos) << e;
  EXPECT_NE(e.find("model.state_dict()"), std::string::npos) << e;
  e = init_error(file("no_such_file.pt"), m);
  EXPECT_NE(e.find("does not exist"), std::string::npos) << e;
}

// A training run started from another run: the report and meta.json record it; the
// classifier loads because the classes are the same; --resume neither initialises again
// nor needs the source any more.
TEST(ModelInitTraining, RunDirectorySourceIsRecordedAndResumeDoesNotReinitialise) {
  const std::string dir = testdata::temp_dir("init_train");
  testdata::write_tiny_idx(dir + "/data", 240, 40, 4);
  std::ofstream(dir + "/cfg.yml") << "data:\n  root: " << dir << "/data\n  workers: 0\n"
                                  << "model:\n  embedding_dim: 16\noptim:\n  epochs: 1\n  batch_size: 32\n"
                                  << "seed: 3\nthreads: 1\nlog_every: 100\ntest_accuracy: false\n";
  const std::string bin = std::string(DUALTUNE_BINARY) + " train -c " + dir + "/cfg.yml ";
  int status = 0;
  auto out = testdata::run_command(bin + "output_dir=" + dir + "/src", &status);
  ASSERT_EQ(status, 0) << out;
  out = testdata::run_command(bin + "output_dir=" + dir + "/b model.init=" + dir + "/src", &status);
  ASSERT_EQ(status, 0) << out;
  EXPECT_NE(out.find("(run directory): 26 tensors loaded, 0 missing, 0 mismatched, 0 unexpected, 0 new"),
            std::string::npos) << out;
  const auto report = nlohmann::json::parse(testdata::slurp(dir + "/b/init_report.json"));
  EXPECT_EQ(report["kind"], "run directory");
  EXPECT_EQ(report["loaded"].size(), 26u);  // convnet-s: 3 convs, 3 BNs (5 each), proj 2, neck 5, classifier 1
  EXPECT_NE(std::find(report["loaded"].begin(), report["loaded"].end(), "classifier.weight"), report["loaded"].end());
  auto meta = nlohmann::json::parse(testdata::slurp(dir + "/b/meta.json"));
  EXPECT_EQ(meta["init"]["path"], dir + "/src");
  EXPECT_EQ(meta["init"]["loaded"], 26);

  const std::string ckpt = testdata::slurp(dir + "/b/checkpoint.pt");
  fs::remove_all(dir + "/src");  // a second initialisation would now fail
  out = testdata::run_command(bin + "output_dir=" + dir + "/b model.init=" + dir + "/src --resume", &status);
  ASSERT_EQ(status, 0) << out;
  EXPECT_EQ(out.find("model.init"), std::string::npos) << out;
  EXPECT_EQ(testdata::slurp(dir + "/b/checkpoint.pt"), ckpt);
  meta = nlohmann::json::parse(testdata::slurp(dir + "/b/meta.json"));
  EXPECT_EQ(meta["init"]["loaded"], 26) << "the init record survives the resume";
  fs::remove_all(dir);
}

// A source trained on other classes: everything but the classifier loads.
TEST(ModelInitTraining, RunWithOtherClassesKeepsANewClassifier) {
  const std::string dir = testdata::temp_dir("init_classes");
  testdata::write_tiny_idx(dir + "/data", 160, 40, 4);
  std::ofstream(dir + "/cfg.yml") << "data:\n  root: " << dir << "/data\n  workers: 0\n"
                                  << "model:\n  embedding_dim: 16\noptim:\n  epochs: 1\n  batch_size: 32\n"
                                  << "seed: 3\nthreads: 1\nlog_every: 100\ntest_accuracy: false\n";
  const std::string bin = std::string(DUALTUNE_BINARY) + " train -c " + dir + "/cfg.yml ";
  int status = 0;
  auto out = testdata::run_command(bin + "output_dir=" + dir + "/src data.classes=0-1", &status);
  ASSERT_EQ(status, 0) << out;
  out = testdata::run_command(bin + "output_dir=" + dir + "/b model.init=" + dir + "/src", &status);
  ASSERT_EQ(status, 0) << out;
  const auto report = nlohmann::json::parse(testdata::slurp(dir + "/b/init_report.json"));
  EXPECT_EQ(report["loaded"].size(), 25u);
  ASSERT_EQ(report["new"].size(), 1u);
  EXPECT_EQ(report["new"][0]["name"], "classifier.weight");
  EXPECT_EQ(report["mismatched"][0]["name"], "classifier.weight");  // 2 x 16 in the source, 4 x 16 here
  fs::remove_all(dir);
}

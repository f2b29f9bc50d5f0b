// Compatible training: gradient routing of each term, the frozen old model, and a
// TorchScript old model built from C++.
#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <filesystem>

#include "dualtune/config/config.h"
#include "dualtune/data/class_map.h"
#include "dualtune/engine/objective.h"
#include "dualtune/engine/settings.h"
#include "dualtune/engine/trainer.h"
#include "dualtune/features/npy.h"
#include "dualtune/losses/compat/contrastive.h"
#include "dualtune/losses/compat/mix.h"
#include "dualtune/losses/compat/mutual.h"
#include "dualtune/losses/compat/prototype.h"
#include "tiny_data.h"

using namespace dualtune;
namespace compat = dualtune::losses::compat;

namespace {

models::EmbeddingModel small_model(int64_t classes = 4) {
  models::ModelSpec spec;
  spec.embedding_dim = 16;
  spec.num_classes = classes;
  return models::EmbeddingModel(spec);
}

bool has_grad(const torch::Tensor& p) { return p.grad().defined() && p.grad().abs().sum().item<double>() > 0; }

bool backbone_has_grad(models::EmbeddingModel& m) {
  for (auto& p : m->backbone->parameters())
    if (has_grad(p)) return true;
  return false;
}

struct Routing : ::testing::Test {
  models::EmbeddingModel model = small_model();
  torch::Tensor x = torch::randn({6, 1, 28, 28});
  torch::Tensor y = torch::tensor(std::vector<int64_t>{0, 1, 2, 3, 0, 1});
  torch::Tensor old_targets = torch::tensor(std::vector<int64_t>{0, 1, -1, -1, 0, 1});
  torch::Tensor eo = torch::randn({6, 12});  // old embeddings (Do = 12 < Dn = 16)
  models::ClassHead wo{torch::randn({2, 12}), false, 1.0};
};

}  // namespace

TEST_F(Routing, O2nReachesOnlyTheNewClassifier) {
  compat::o2n_loss(eo, *model->classifier, y).backward();
  EXPECT_TRUE(has_grad(model->classifier->weight));
  EXPECT_FALSE(backbone_has_grad(model));
}

TEST_F(Routing, N2oAndPrototypeReachOnlyTheNewBackbone) {
  const auto e = model->forward(x);
  (compat::n2o_loss(e, wo, old_targets) +
   compat::prototype_triplet_loss(e, torch::randn({4, 12}), y, 0.3))
      .backward();
  EXPECT_TRUE(backbone_has_grad(model));
  EXPECT_FALSE(has_grad(model->classifier->weight));
  EXPECT_FALSE(wo.weight.requires_grad());
}

TEST_F(Routing, MixReachesBackboneAndClassifierButNotOld) {
  auto eo_leaf = eo.clone().requires_grad_(true);
  const auto e = model->forward(x);
  compat::mix_loss(e, eo_leaf, *model->classifier, wo, y, old_targets, 0.5).backward();
  EXPECT_TRUE(backbone_has_grad(model));
  EXPECT_TRUE(has_grad(model->classifier->weight));
  EXPECT_FALSE(eo_leaf.grad().defined());
}

TEST_F(Routing, ContrastReachesOnlyTheNewBackboneNeverTheOldEmbeddings) {
  auto eo_leaf = eo.clone().requires_grad_(true);
  compat::cross_model_contrastive_loss(model->forward(x), eo_leaf, y, 0.05, true).backward();
  EXPECT_TRUE(backbone_has_grad(model));
  EXPECT_FALSE(has_grad(model->classifier->weight));
  EXPECT_FALSE(eo_leaf.grad().defined());
}

class CompatRun : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir = testdata::temp_dir("compat");
    testdata::write_tiny_idx(dir + "/data", 240, 60, 8);
    auto cfg = config::Config::from_string(base_yaml() + "output_dir: " + dir + "/old\n",
                                           {"data.classes=0-3", "model.backbone=convnet-s"});
    engine::train(cfg, {false, true});
  }
  static std::string base_yaml() {
    return "data:\n  root: " + dir + "/data\n  workers: 1\nmodel:\n  embedding_dim: 16\n"
           "optim:\n  epochs: 1\n  batch_size: 32\nlog_every: 1000\nthreads: 1\n";
  }
  static std::string dir;
};
std::string CompatRun::dir;

TEST_F(CompatRun, OldModelNeverChanges) {
  auto cfg = config::Config::from_string(base_yaml() + "output_dir: " + dir + "/new\n",
                                         {"compat.method=dual-tuning", "old.path=" + dir + "/old",
                                          "compat.mix_weight=1.0", "compat.o2n_weight=1.0"});
  auto train_set = data::open_dataset(engine::dataset_spec(cfg));
  engine::Objective objective(engine::objective_options(cfg), train_set, dir + "/new", [](const std::string&) {});
  std::vector<torch::Tensor> before;
  for (auto& t : objective.old_model()->state()) before.push_back(t.clone());
  ASSERT_GT(before.size(), 10u);
  auto model = small_model(8);
  model->train();
  torch::optim::Adam opt(model->parameters(), 1e-2);
  for (int step = 0; step < 3; ++step) {
    const auto x = torch::randn({16, 1, 28, 28});
    const auto y = torch::randint(0, 8, {16}, torch::kInt64);
    torch::Tensor total = torch::zeros({});
    const auto terms = objective.terms(x, model->forward(x), y, *model);
    EXPECT_EQ(terms.size(), 5u);  // softmax, proto, n2o, o2n, mix
    for (auto& t : terms) total = total + t.weight * t.value;
    opt.zero_grad();
    total.backward();
    opt.step();
  }
  const auto after = objective.old_model()->state();
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_TRUE(torch::equal(before[i], after[i])) << "old tensor " << i << " changed";
    EXPECT_FALSE(after[i].grad().defined());
  }
  // Prototypes of all 8 new classes were saved next to the run.
  const auto p = npy::load(dir + "/new/prototypes/prototypes.npy");
  EXPECT_EQ(p.shape, (std::vector<int64_t>{8, 16}));
}

TEST_F(CompatRun, TrainsAgainstATorchScriptOldModel) {
  // A deployed model exported as TorchScript: e = flatten(x) · W, W: 784 × 10.
  torch::jit::Module m("OldNet");
  m.register_parameter("w", torch::randn({784, 10}) * 0.05, false);
  m.define(R"(
def forward(self, x):
    return torch.mm(torch.flatten(x, 1), self.w)
)");
  const auto ts = dir + "/old.ts";
  m.save(ts);
  data::ClassMap({"0", "1", "2"}).save(dir + "/old_classes.json");
  const std::vector<float> wo(3 * 10, 0.1f);
  npy::save_f32(dir + "/old_classifier.npy", wo.data(), {3, 10});
  for (const char* method : {"dual-tuning", "bct", "l2"}) {
    auto cfg = config::Config::from_string(
        base_yaml() + "output_dir: " + dir + "/ts_" + method + "\n",
        {std::string("compat.method=") + method, "old.path=" + ts, "old.class_map=" + dir + "/old_classes.json",
         "old.classifier=" + dir + "/old_classifier.npy"});
    const auto r = engine::train(cfg, {false, true});
    EXPECT_EQ(r.epochs, 1);
    EXPECT_TRUE(std::filesystem::exists(dir + "/ts_" + method + "/checkpoint.pt"));
  }
  const auto p = npy::load(dir + "/ts_dual-tuning/prototypes/prototypes.npy");
  EXPECT_EQ(p.shape, (std::vector<int64_t>{8, 10}));  // every new class, old width Do = 10
  // A classifier whose width differs from the old embedding is a clear error.
  const std::vector<float> bad(3 * 7, 0.1f);
  npy::save_f32(dir + "/bad_classifier.npy", bad.data(), {3, 7});
  auto cfg = config::Config::from_string(
      base_yaml() + "output_dir: " + dir + "/ts_bad\n",
      {"compat.method=dual-tuning", "old.path=" + ts, "old.class_map=" + dir + "/old_classes.json",
       "old.classifier=" + dir + "/bad_classifier.npy"});
  try {
    engine::train(cfg, {false, true});
    FAIL() << "mismatching old classifier accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("old classifier width 7"), std::string::npos) << e.what();
  }
}

TEST_F(CompatRun, TheSpacingUnitIsTheOldPrototypesNearestNeighbourDistance) {
  // Prototypes P[c] = (2c, 0, ..., 0): every class's nearest other prototype is 2 away,
  // so with proto_margin_unit: spacing the term measures distances in units of 2.
  engine::Prototypes p;
  p.matrix = torch::zeros({8, 16});
  for (int64_t c = 0; c < 8; ++c) p.matrix[c][0] = 2.0 * static_cast<double>(c);
  p.classes = data::ClassMap({"0", "1", "2", "3", "4", "5", "6", "7"});
  engine::save_prototypes(dir + "/line_protos", p);
  const auto x = torch::randn({8, 1, 28, 28});
  const auto y = torch::arange(8, torch::kInt64);
  const auto e = torch::randn({8, 16}) * 3;
  auto model = small_model(8);
  for (const auto& [unit, u] : std::vector<std::pair<std::string, double>>{{"absolute", 1.0}, {"spacing", 2.0}}) {
    auto cfg = config::Config::from_string(
        base_yaml() + "output_dir: " + dir + "/spacing_" + unit + "\n",
        {"compat.method=dual-tuning", "old.path=" + dir + "/old", "compat.prototypes=" + dir + "/line_protos",
         "compat.proto_margin=0.5", "compat.proto_margin_unit=" + unit, "compat.n2o_weight=0", "compat.o2n_weight=0"});
    auto train_set = data::open_dataset(engine::dataset_spec(cfg));
    engine::Objective objective(engine::objective_options(cfg), train_set, dir + "/spacing_" + unit,
                                [](const std::string&) {});
    EXPECT_NEAR(objective.old_models().front().proto_unit, u, 1e-6) << unit;
    const auto terms = objective.terms(x, e, y, *model);
    const auto proto = std::find_if(terms.begin(), terms.end(), [](const auto& t) { return t.name == "proto"; });
    ASSERT_NE(proto, terms.end()) << unit;
    // Against the loss on hand-scaled inputs: distances / u, margin 0.5 in those units.
    EXPECT_NEAR(proto->value.item<double>(),
                compat::prototype_triplet_loss(e / u, p.matrix / u, y, 0.5).item<double>(), 1e-5)
        << unit;
  }
}

TEST_F(CompatRun, TheRegressFormPullsEachEmbeddingOntoItsClassPrototypeDirection) {
  // Prototypes P[c] = e_c (unit vector c): with proto_form: regress the term is
  // mean_i (2 − 2 cos(e_i, P[y_i])) = mean_i (2 − 2 e_i[y_i] / |e_i|).
  engine::Prototypes p;
  p.matrix = torch::eye(8, 16);
  p.classes = data::ClassMap({"0", "1", "2", "3", "4", "5", "6", "7"});
  engine::save_prototypes(dir + "/axis_protos", p);
  auto cfg = config::Config::from_string(
      base_yaml() + "output_dir: " + dir + "/regress\n",
      {"compat.method=dual-tuning", "old.path=" + dir + "/old", "compat.prototypes=" + dir + "/axis_protos",
       "compat.proto_form=regress", "compat.n2o_weight=0", "compat.o2n_weight=0"});
  auto train_set = data::open_dataset(engine::dataset_spec(cfg));
  engine::Objective objective(engine::objective_options(cfg), train_set, dir + "/regress", [](const std::string&) {});
  const auto y = torch::tensor(std::vector<int64_t>{3, 0, 7, 3});
  const auto e = torch::randn({4, 16});
  auto model = small_model(8);
  const auto terms = objective.terms(torch::randn({4, 1, 28, 28}), e, y, *model);
  const auto proto = std::find_if(terms.begin(), terms.end(), [](const auto& t) { return t.name == "proto"; });
  ASSERT_NE(proto, terms.end());
  double expected = 0;
  for (int64_t i = 0; i < 4; ++i)
    expected += 2 - 2 * e[i][y[i].item<int64_t>()].item<double>() / e[i].norm().item<double>();
  EXPECT_NEAR(proto->value.item<double>(), expected / 4, 1e-5);
}

TEST_F(CompatRun, PrototypesOfTheWrongWidthAreRefused) {
  // 8 classes named like the training set, but 7 components where the old model has 16.
  engine::Prototypes p;
  p.matrix = torch::zeros({8, 7});
  p.classes = data::ClassMap({"0", "1", "2", "3", "4", "5", "6", "7"});
  engine::save_prototypes(dir + "/bad_protos", p);
  auto cfg = config::Config::from_string(base_yaml() + "output_dir: " + dir + "/bad_protos_run\n",
                                         {"compat.method=dual-tuning", "old.path=" + dir + "/old",
                                          "compat.prototypes=" + dir + "/bad_protos"});
  try {
    engine::train(cfg, {false, true});
    FAIL() << "prototypes of the wrong width accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("prototypes have 7 components but the old model's embedding has 16"),
              std::string::npos)
        << e.what();
  }
}

// Training against several old models at once (old: a list; chains of generations):
// the objective holds one set of compatibility terms per old model, each weighted by
// the term's λ times old[i].weight, each equal to the term computed against that old
// model alone, and every gradient goes to the new model only.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "dualtune/config/config.h"
#include "dualtune/engine/objective.h"
#include "dualtune/engine/settings.h"
#include "dualtune/engine/trainer.h"
#include "dualtune/features/npy.h"
#include "dualtune/util/run_dir.h"
#include "tiny_data.h"

using namespace dualtune;

namespace {

class MultiOld : public ::testing::Test {
 protected:
  // v1: classes 0-2, D 12; v2: classes 0-5, D 16 (trained independently: only their
  // embeddings and classifiers matter here).
  static void SetUpTestSuite() {
    dir = testdata::temp_dir("multi_old");
    testdata::write_tiny_idx(dir + "/data", 240, 40, 8);
    engine::train(config::Config::from_string(base_yaml(), {"output_dir=" + dir + "/v1", "data.classes=0-2",
                                                            "model.embedding_dim=12"}),
                  {false, true});
    engine::train(config::Config::from_string(base_yaml(), {"output_dir=" + dir + "/v2", "data.classes=0-5"}),
                  {false, true});
  }
  static std::string base_yaml() {
    return "data:\n  root: " + dir + "/data\n  workers: 1\nmodel:\n  embedding_dim: 16\n"
           "optim:\n  epochs: 1\n  batch_size: 32\nlog_every: 1000\nthreads: 1\n";
  }
  static config::Config config(const std::string& method, const std::string& olds, const std::string& out) {
    return config::Config::from_string(base_yaml() + "compat:\n  method: " + method + "\nold: " + olds + "\n",
                                       {"output_dir=" + dir + "/" + out});
  }
  static std::string dir;
};
std::string MultiOld::dir;

double value_of(const std::vector<engine::LossTerm>& terms, const std::string& name, double* weight = nullptr) {
  for (const auto& t : terms) {
    if (t.name != name) continue;
    if (weight) *weight = t.weight;
    return t.value.item<double>();
  }
  ADD_FAILURE() << "no term " << name;
  return 0;
}

}  // namespace

TEST_F(MultiOld, EachOldModelAddsItsOwnWeightedTermsEqualToTheSingleOldTerms) {
  const auto both = config("dual-tuning", "[{path: " + dir + "/v2}, {path: " + dir + "/v1, weight: 0.5}]", "both");
  const auto only_v2 = config("dual-tuning", "{path: " + dir + "/v2}", "only_v2");
  const auto only_v1 = config("dual-tuning", "{path: " + dir + "/v1}", "only_v1");
  auto train_set = data::open_dataset(engine::dataset_spec(both));
  auto quiet = [](const std::string&) {};
  engine::Objective ob(engine::objective_options(both), train_set, dir + "/both", quiet),
      o2(engine::objective_options(only_v2), train_set, dir + "/only_v2", quiet),
      o1(engine::objective_options(only_v1), train_set, dir + "/only_v1", quiet);
  ASSERT_EQ(ob.old_models().size(), 2u);
  EXPECT_EQ(ob.old_models()[1].model->dim(), 12);

  models::ModelSpec spec;
  spec.embedding_dim = 16;
  spec.num_classes = 8;
  models::EmbeddingModel model(spec);
  torch::manual_seed(0);
  const auto x = torch::randn({12, 1, 28, 28});
  const auto y = torch::tensor(std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3});
  const auto e = model->forward(x);
  const auto terms = ob.terms(x, e, y, *model);
  // softmax + (proto, n2o, o2n) for each of the two old models.
  std::vector<std::string> names;
  for (const auto& t : terms) names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"softmax", "proto@0", "n2o@0", "o2n@0", "proto@1", "n2o@1", "o2n@1"}));
  const double lp = both.get<double>("compat.proto_weight"), ln = both.get<double>("compat.n2o_weight");
  for (const char* term : {"proto", "n2o", "o2n"}) {
    double w0 = 0, w1 = 0, ws = 0;
    const double v0 = value_of(terms, std::string(term) + "@0", &w0), v1 = value_of(terms, std::string(term) + "@1", &w1);
    const double single_v2 = value_of(o2.terms(x, e, y, *model), term, &ws);
    const double single_v1 = value_of(o1.terms(x, e, y, *model), term);
    EXPECT_NEAR(v0, single_v2, 1e-6) << term;
    EXPECT_NEAR(v1, single_v1, 1e-6) << term;
    EXPECT_DOUBLE_EQ(w0, ws);
    EXPECT_DOUBLE_EQ(w1, 0.5 * ws);  // old[1].weight = 0.5
  }
  double w = 0;
  value_of(terms, "proto@1", &w);
  EXPECT_DOUBLE_EQ(w, 0.5 * lp);
  value_of(terms, "n2o@0", &w);
  EXPECT_DOUBLE_EQ(w, ln);
  // The two old models know 6 and 3 of the 8 classes: their prototypes were saved apart.
  EXPECT_EQ(npy::load(dir + "/both/prototypes/prototypes.npy").shape, (std::vector<int64_t>{8, 16}));
  EXPECT_EQ(npy::load(dir + "/both/prototypes_1/prototypes.npy").shape, (std::vector<int64_t>{8, 12}));
}

TEST_F(MultiOld, GradientsReachOnlyTheNewModel) {
  const auto cfg = config("bct", "[{path: " + dir + "/v2}, {path: " + dir + "/v1}]", "grad");
  auto train_set = data::open_dataset(engine::dataset_spec(cfg));
  engine::Objective ob(engine::objective_options(cfg), train_set, dir + "/grad", [](const std::string&) {});
  models::ModelSpec spec;
  spec.embedding_dim = 16;
  spec.num_classes = 8;
  models::EmbeddingModel model(spec);
  const auto x = torch::randn({8, 1, 28, 28});
  const auto y = torch::arange(8, torch::kInt64);
  const auto e = model->forward(x);
  const auto terms = ob.terms(x, e, y, *model);
  // Only the compatibility terms: their gradient must reach the backbone and nothing old.
  torch::Tensor compat = torch::zeros({});
  for (const auto& t : terms)
    if (t.name.rfind("bct@", 0) == 0) compat = compat + t.weight * t.value;
  compat.backward();
  bool backbone = false;
  for (auto& p : model->backbone->parameters()) backbone |= p.grad().defined() && p.grad().abs().sum().item<double>() > 0;
  EXPECT_TRUE(backbone);
  for (const auto& old : ob.old_models()) {
    for (auto& t : old.model->state()) {
      EXPECT_FALSE(t.requires_grad());
      EXPECT_FALSE(t.grad().defined());
    }
    EXPECT_FALSE(old.extended.head.weight.requires_grad());
  }
}

TEST_F(MultiOld, TrainingRecordsEveryOldModelsHash) {
  const auto cfg = config("l2", "[{path: " + dir + "/v2}, {path: " + dir + "/v1}]", "l2_both");
  engine::train(cfg, {false, true});
  const auto meta = read_meta(dir + "/l2_both");
  ASSERT_TRUE(meta.contains("old_config_hashes"));
  EXPECT_EQ(meta["old_config_hashes"][0], read_meta(dir + "/v2")["config_hash"]);
  EXPECT_EQ(meta["old_config_hashes"][1], read_meta(dir + "/v1")["config_hash"]);
  EXPECT_EQ(meta["old_config_hash"], meta["old_config_hashes"][0]);
}

// Forward transformation h (FCT): it recovers a known map from synthetic pairs, is
// deterministic for a seed, and `transform train` / `transform apply` round-trip
// feature files (shapes, labels, cams, paths) with clear errors on mismatches, and
// `gallery transform` stores h of every old vector not yet backfilled as a version that
// new queries then score.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "dualtune/config/config.h"
#include "dualtune/engine/trainer.h"
#include "dualtune/engine/transform_run.h"
#include "dualtune/features/feature_set.h"
#include "dualtune/gallery/gallery.h"
#include "dualtune/util/error.h"
#include "../core/gallery_fixtures.h"
#include "tiny_data.h"

using namespace dualtune;

namespace {

// A random rotation (orthogonal, det ±1 is fine: any orthogonal map) times a scale:
// the true map of the synthetic pairs, en = s · R · eo.
torch::Tensor rotation(int64_t d) {
  const auto qr = torch::linalg_qr(torch::randn({d, d}, torch::kFloat64));
  return std::get<0>(qr).to(torch::kFloat);
}

double mean_cosine(const torch::Tensor& a, const torch::Tensor& b) {
  return torch::cosine_similarity(a, b, 1).mean().item<double>();
}

void no_log(const std::string&) {}

}  // namespace

TEST(ForwardTransform, RecoversARotationAndScaleFromPairs) {
  torch::manual_seed(3);
  const int64_t d = 8, n = 4000;
  const double scale = 2.5;
  const auto R = rotation(d);
  const auto x = torch::randn({n, d});
  engine::EmbeddingPairs pairs{x, scale * x.matmul(R.t()), {}};
  models::ForwardTransformSpec spec{d, d, 0, 64, 2};
  engine::TransformFitOptions o;
  o.epochs = 40;
  o.batch_size = 128;
  o.lr = 3e-3;
  o.weight_decay = 0;
  o.holdout = 0.1;
  auto fit = engine::fit_forward_transform(pairs, spec, o, no_log);

  // The target variance per component is s² = 6.25: held-out MSE under 2 % of it.
  EXPECT_LT(fit.holdout_mse.back(), 0.02 * scale * scale);
  EXPECT_LT(fit.holdout_mse.back(), 0.05 * fit.holdout_mse_before);
  // Fresh points from the same distribution: h(x) ≈ s R x in direction and length.
  torch::NoGradGuard no_grad;
  const auto fresh = torch::randn({500, d});
  const auto truth = scale * fresh.matmul(R.t());
  const auto pred = fit.h->forward(fresh);
  EXPECT_GT(mean_cosine(pred, truth), 0.99);
  const double norm_ratio = (pred.norm(2, 1) / truth.norm(2, 1)).mean().item<double>();
  EXPECT_NEAR(norm_ratio, 1.0, 0.05);
  // And it is not the identity map: x itself is far from the target direction.
  EXPECT_LT(mean_cosine(fresh, truth), 0.5);
}

TEST(ForwardTransform, UsesSideInformationWhenTheOldEmbeddingLacksIt) {
  // The target depends on a component the old embedding does not carry but the side
  // information does: only the transform with side information can fit it.
  torch::manual_seed(5);
  const int64_t n = 2000;
  const auto old = torch::randn({n, 4});
  const auto side = torch::randn({n, 2});
  const auto target = torch::cat({old.narrow(1, 0, 2), side.narrow(1, 0, 1) * 3.0}, 1);  // n × 3
  engine::TransformFitOptions o;
  o.epochs = 20;
  o.batch_size = 128;
  o.lr = 3e-3;
  o.weight_decay = 0;
  auto with = engine::fit_forward_transform({old, target, side}, {4, 3, 2, 64, 2}, o, no_log);
  auto without = engine::fit_forward_transform({old, target, {}}, {4, 3, 0, 64, 2}, o, no_log);
  // Without it the third component (variance 9) cannot be predicted: MSE ≥ 9 / 3 = 3 in
  // expectation; with it the fit is close.
  EXPECT_GT(without.holdout_mse.back(), 2.5);
  EXPECT_LT(with.holdout_mse.back(), 0.3);
}

TEST(ForwardTransform, FitIsDeterministicForASeed) {
  torch::manual_seed(9);
  const auto x = torch::randn({600, 6});
  engine::EmbeddingPairs pairs{x, x.flip(1) * 2.0, {}};
  engine::TransformFitOptions o;
  o.epochs = 3;
  o.seed = 11;
  auto a = engine::fit_forward_transform(pairs, {6, 6, 0, 16, 1}, o, no_log);
  auto b = engine::fit_forward_transform(pairs, {6, 6, 0, 16, 1}, o, no_log);
  const auto pa = a.h->parameters(), pb = b.h->parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i]));
  EXPECT_EQ(a.holdout_mse, b.holdout_mse);
}

TEST(ForwardTransform, RefusesPairsThatDoNotMatchItsSpec) {
  const auto x = torch::randn({50, 6});
  engine::TransformFitOptions o;
  o.epochs = 1;
  EXPECT_THROW(engine::fit_forward_transform({x, torch::randn({50, 4}), {}}, {6, 5, 0, 8, 1}, o, no_log), Error);
  EXPECT_THROW(engine::fit_forward_transform({x, torch::randn({49, 5}), {}}, {6, 5, 0, 8, 1}, o, no_log), Error);
  EXPECT_THROW(engine::fit_forward_transform({x, torch::randn({50, 5}), torch::randn({50, 3})}, {6, 5, 2, 8, 1}, o,
                                             no_log),
               Error);
}

// Train an old (convnet-s, D 12, classes 0-3) and a new model (convnet-m, D 16, all 8
// classes) on tiny generated IDX data, then the CLI: transform train -> transform apply.
class TransformCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir = testdata::temp_dir("transform");
    testdata::write_tiny_idx(dir + "/data", 240, 48, 8);
    const std::string yaml = "data:\n  root: " + dir + "/data\n  workers: 1\n"
                             "optim:\n  epochs: 1\n  batch_size: 32\nlog_every: 1000\nthreads: 1\n"
                             "transform:\n  width: 32\n  epochs: 3\n  augmented_passes: 1\n  batch_size: 64\n";
    std::ofstream(dir + "/h.yml") << yaml;
    engine::train(config::Config::from_string(yaml, {"output_dir=" + dir + "/old", "data.classes=0-3",
                                                     "model.embedding_dim=12"}),
                  {false, true});
    engine::train(config::Config::from_string(yaml, {"output_dir=" + dir + "/new", "model.backbone=convnet-m",
                                                     "model.embedding_dim=16"}),
                  {false, true});
  }
  static std::string run(const std::string& args, int* status) {
    return testdata::run_command(std::string(DUALTUNE_BINARY) + " " + args, status);
  }
  /// `transform train` between the suite's old and new models into dir/<out>.
  static std::string train_h(const std::string& out, const std::string& overrides, int* status) {
    return run("transform train --old " + dir + "/old --new " + dir + "/new -c " + dir + "/h.yml output_dir=" + dir +
                   "/" + out + " " + overrides,
               status);
  }
  static std::string dir;
};
std::string TransformCli::dir;

TEST_F(TransformCli, TrainThenApplyRoundTripsShapesAndKeys) {
  int st = 0;
  auto out = train_h("h", "", &st);
  ASSERT_EQ(st, 0) << out;
  // 240 training images × (1 test-time + 1 augmented pass) pairs.
  auto meta = nlohmann::json::parse(testdata::slurp(dir + "/h/meta.json"));
  EXPECT_EQ(meta["pairs"].get<int64_t>(), 480);
  EXPECT_EQ(meta["old"]["dim"].get<int64_t>(), 12);
  EXPECT_EQ(meta["new"]["dim"].get<int64_t>(), 16);
  EXPECT_LT(meta["holdout_mse"].get<double>(), meta["holdout_mse_before"].get<double>());

  out = run("extract --model " + dir + "/old --out " + dir + "/feats_old", &st);
  ASSERT_EQ(st, 0) << out;
  out = run("transform apply --transform " + dir + "/h --features " + dir + "/feats_old --out " + dir + "/feats_h", &st);
  ASSERT_EQ(st, 0) << out;
  const auto old = features::FeatureSet::load(dir + "/feats_old");
  const auto h = features::FeatureSet::load(dir + "/feats_h");
  EXPECT_EQ(h.n, old.n);
  EXPECT_EQ(h.d, 16);
  EXPECT_EQ(h.labels, old.labels);
  EXPECT_EQ(h.cams, old.cams);
  EXPECT_EQ(h.paths, old.paths);
  EXPECT_EQ(h.class_names, old.class_names);
  // The files hold exactly h applied in this process to the same rows.
  auto loaded = engine::load_transform_run(dir + "/h");
  const auto expect = engine::apply_forward_transform(loaded, old.n, old.features.data(), nullptr);
  ASSERT_EQ(expect.size(), h.features.size());
  for (size_t i = 0; i < expect.size(); ++i) ASSERT_FLOAT_EQ(expect[i], h.features[i]) << "element " << i;
}

TEST_F(TransformCli, ApplyRefusesFeaturesOfTheWrongWidthAndWritesNothing) {
  int st = 0;
  auto out = train_h("h2", "transform.augmented_passes=0", &st);
  ASSERT_EQ(st, 0) << out;
  // New-model features (16 wide) are not old embeddings (12 wide).
  out = run("extract --model " + dir + "/new --out " + dir + "/feats_new", &st);
  ASSERT_EQ(st, 0) << out;
  out = run("transform apply --transform " + dir + "/h2 --features " + dir + "/feats_new --out " + dir + "/bad", &st);
  EXPECT_NE(st, 0);
  EXPECT_NE(out.find("maps 12-dimensional old embeddings, but the features have 16 components"), std::string::npos)
      << out;
  EXPECT_FALSE(std::filesystem::exists(dir + "/bad/features.npy"));
  // A directory that is not a transform run.
  out = run("transform apply --transform " + dir + "/old --features " + dir + "/feats_new --out " + dir + "/bad", &st);
  EXPECT_NE(st, 0);
  EXPECT_NE(out.find("is not a finished transform run"), std::string::npos) << out;
}

TEST_F(TransformCli, TrainRefusesAnOldModelFedADifferentInput) {
  int st = 0;
  const auto out = train_h("h3", "data.height=32 data.width=32", &st);
  EXPECT_NE(st, 0);
  EXPECT_NE(out.find("old model " + dir + "/old was trained with data.height = 28 but this run uses 32"),
            std::string::npos)
      << out;
  EXPECT_FALSE(std::filesystem::exists(dir + "/h3/meta.json"));
}

TEST_F(TransformCli, GalleryTransformMapsEveryOldVectorNotYetBackfilledAndNewQueriesScoreIt) {
  int st = 0;
  auto out = train_h("hg", "transform.augmented_passes=0", &st);
  ASSERT_EQ(st, 0) << out;
  const std::string g = dir + "/gallery";
  std::filesystem::remove_all(g);
  for (const std::string cmd : {"create " + g + " --model old --model-path " + dir + "/old",
                                "add " + g + " --format idx --root " + dir + "/data --split test --threads 1 --workers 0"}) {
    out = run("gallery " + cmd, &st);
    ASSERT_EQ(st, 0) << cmd << "\n" << out;
  }
  // Nothing rolls out yet: nothing to map into.
  out = run("gallery transform " + g + " --transform " + dir + "/hg", &st);
  EXPECT_NE(st, 0);
  EXPECT_NE(out.find("no model is rolling out"), std::string::npos) << out;
  for (const std::string cmd : {"rollout " + g + " --model new --model-path " + dir + "/new --force",  // ungated: not the subject
                                "backfill " + g + " --max-items 16 --batch 8 --threads 1 --workers 0 --quiet"}) {
    out = run("gallery " + cmd, &st);
    ASSERT_EQ(st, 0) << cmd << "\n" << out;
  }
  // 48 items, 16 backfilled: h maps the other 32, in chunks of 10.
  out = run("gallery transform " + g + " --transform " + dir + "/hg --chunk 10 --threads 1", &st);
  ASSERT_EQ(st, 0) << out;
  EXPECT_NE(out.find("32 embeddings of 'old' mapped by h into 'new' as version 'new@h'"), std::string::npos) << out;
  EXPECT_NE(out.find("skipped 16 already backfilled and 0 already transformed"), std::string::npos) << out;
  const auto old_v = gallery::fixtures::vectors_by_key(g, "old");
  const auto new_v = gallery::fixtures::vectors_by_key(g, "new");
  const auto h_v = gallery::fixtures::vectors_by_key(g, "new@h");
  ASSERT_EQ(old_v.size(), 48u);
  ASSERT_EQ(new_v.size(), 16u);
  ASSERT_EQ(h_v.size(), 32u);
  // Each stored vector is h applied in this process to the item's stored old vector.
  auto h = engine::load_transform_run(dir + "/hg");
  for (const auto& [key, v] : h_v) {
    EXPECT_EQ(new_v.count(key), 0u) << key << " was backfilled and transformed";
    const auto expect = engine::apply_forward_transform(h, 1, old_v.at(key).data(), nullptr);
    ASSERT_EQ(v.size(), 16u);
    for (size_t c = 0; c < v.size(); ++c) EXPECT_NEAR(v[c], expect[c], 1e-5) << key << " component " << c;
  }
  // New queries score the 16 backfilled items by their own embedding and the 32 others
  // by h(old): no item by its old embedding any more.
  {
    auto gal = gallery::Gallery::open(g);
    const auto q = new_v.begin()->second;
    gallery::SearchOptions so;
    so.k = 48;
    const auto r = gal->search("new", 1, q.data(), 16, so);
    const int64_t native = gal->model("new").version_id, old_version = gal->model("old").version_id;
    int by_new = 0, by_h = 0, by_old = 0;
    for (int j = 0; j < 48; ++j) {
      by_new += r.versions[j] == native;
      by_old += r.versions[j] == old_version;
      by_h += r.versions[j] != native && r.versions[j] != old_version && r.ids[j] >= 0;
    }
    EXPECT_EQ(by_new, 16);
    EXPECT_EQ(by_h, 32);
    EXPECT_EQ(by_old, 0);
  }
  // Again: nothing left to map.
  out = run("gallery transform " + g + " --transform " + dir + "/hg", &st);
  ASSERT_EQ(st, 0) << out;
  EXPECT_NE(out.find("0 embeddings"), std::string::npos) << out;
  EXPECT_NE(out.find("skipped 16 already backfilled and 32 already transformed"), std::string::npos) << out;
  out = run("gallery status " + g, &st);
  EXPECT_NE(out.find("new@h"), std::string::npos) << out;
  // Another h into the same version is refused; an h of other models is refused.
  out = train_h("hg2", "transform.augmented_passes=0 transform.epochs=1 seed=7", &st);
  ASSERT_EQ(st, 0) << out;
  out = run("gallery transform " + g + " --transform " + dir + "/hg2", &st);
  EXPECT_NE(st, 0);
  EXPECT_NE(out.find("version 'new@h' was written by h = "), std::string::npos) << out;
  EXPECT_EQ(gallery::fixtures::vectors_by_key(g, "new@h"), h_v);
  auto meta = nlohmann::json::parse(testdata::slurp(dir + "/hg2/meta.json"));
  meta["new"]["config_hash"] = "0123abcd";
  std::ofstream(dir + "/hg2/meta.json") << meta.dump();
  out = run("gallery transform " + g + " --transform " + dir + "/hg2 --version new@h2", &st);
  EXPECT_NE(st, 0);
  EXPECT_NE(out.find("h was trained with the new model"), std::string::npos) << out;
  EXPECT_NE(out.find("(config:0123abcd); the gallery's 'new' is"), std::string::npos) << out;
}

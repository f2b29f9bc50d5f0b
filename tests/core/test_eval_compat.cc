// Mixed galleries, verdict arithmetic and the compatibility matrix.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "dualtune/eval/evaluate.h"
#include "dualtune/eval/mixed_gallery.h"
#include "dualtune/eval/verdict.h"
#include "dualtune/util/error.h"

using namespace dualtune::eval;
using dualtune::features::FeatureSet;

namespace {

/// Two "models" of the same items: old (d_old) and new (d_new) clustered features.
std::pair<FeatureSet, FeatureSet> old_and_new(int64_t n, int64_t d_old, int64_t d_new, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.f, 1.f);
  const int classes = 6;
  FeatureSet o, nw;
  o.n = nw.n = n;
  o.d = d_old;
  nw.d = d_new;
  std::vector<float> co(classes * d_old), cn(classes * d_new);
  for (auto& c : co) c = g(rng);
  for (auto& c : cn) c = g(rng);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = static_cast<int64_t>(rng() % classes);
    o.labels.push_back(c);
    nw.labels.push_back(c);
    o.cams.push_back(-1);
    nw.cams.push_back(-1);
    for (int64_t k = 0; k < d_old; ++k) o.features.push_back(co[c * d_old + k] + 1.5f * g(rng));
    for (int64_t k = 0; k < d_new; ++k) nw.features.push_back(cn[c * d_new + k] + 1.0f * g(rng));
  }
  return {o, nw};
}

void expect_same(const Metrics& a, const Metrics& b) {
  EXPECT_EQ(a.map, b.map);
  EXPECT_EQ(a.minp, b.minp);
  EXPECT_EQ(a.cmc, b.cmc);
  EXPECT_EQ(a.queries, b.queries);
  for (int f = 0; f < 3; ++f) EXPECT_EQ(a.tar_at_far[f], b.tar_at_far[f]);
}

}  // namespace

TEST(MixedGallery, EndpointsEqualNewNewAndNewOldExactly) {
  for (auto [d_old, d_new] : {std::pair<int64_t, int64_t>{8, 8}, {6, 10}}) {
    const auto [o, nw] = old_and_new(200, d_old, d_new, 11);
    EvalOptions opt;
    const Metrics new_new = evaluate_case(nw, nw, opt);
    const Metrics new_old = evaluate_case(nw, o, opt);
    expect_same(evaluate_case(nw, mixed_gallery(nw, o, 0.0, 5), opt), new_new);
    expect_same(evaluate_case(nw, mixed_gallery(nw, o, 1.0, 5), opt), new_old);
  }
}

TEST(MixedGallery, OldItemsAreNestedAndCounted) {
  // round(r·n) old items; the old set for a smaller r is a subset of the one for a larger r.
  const int64_t n = 10;
  EXPECT_EQ(old_item_count(n, 0.25), 3);  // round(2.5) = 3 (half away from zero)
  EXPECT_EQ(old_item_count(n, 0.5), 5);
  EXPECT_THROW(old_item_count(n, 1.5), dualtune::Error);
  const auto order = old_item_order(n, 42);
  EXPECT_EQ(std::set<int64_t>(order.begin(), order.end()).size(), size_t(n));  // a permutation
  EXPECT_EQ(order, old_item_order(n, 42));                                      // seeded
  EXPECT_NE(order, old_item_order(n, 43));

  // Mark which rows of a mixed gallery came from old (old rows are all 1, new all 0).
  FeatureSet o, nw;
  o.n = nw.n = n;
  o.d = 2;
  nw.d = 3;
  o.features.assign(n * 2, 1.f);
  nw.features.assign(n * 3, 0.f);
  o.labels = nw.labels = std::vector<int64_t>(n, 0);
  o.cams = nw.cams = std::vector<int64_t>(n, -1);
  std::set<int64_t> previous;
  for (double r : {0.25, 0.5, 0.75}) {
    const FeatureSet m = mixed_gallery(nw, o, r, 42);
    EXPECT_EQ(m.d, 2);  // min(Do, Dn) components when mixing
    std::set<int64_t> old_rows;
    for (int64_t i = 0; i < n; ++i) {
      if (m.features[i * 2] == 1.f) old_rows.insert(i);
    }
    EXPECT_EQ(int64_t(old_rows.size()), old_item_count(n, r));
    EXPECT_TRUE(std::includes(old_rows.begin(), old_rows.end(), previous.begin(), previous.end()));
    previous = old_rows;
  }
}

TEST(GenerationsGallery, AssignsEachItemOneGenerationByCumulativeFractions) {
  // Three generations of 9 items; generation g's rows are all g + 1 and it has 4 - g
  // components (v3 the widest), so each row tells where it came from.
  const int64_t n = 9;
  std::vector<FeatureSet> gens(3);
  for (int g = 0; g < 3; ++g) {
    gens[g].n = n;
    gens[g].d = 4 - g;
    gens[g].features.assign(static_cast<size_t>(n * gens[g].d), float(g + 1));
    gens[g].labels = std::vector<int64_t>(n, 0);
    gens[g].cams = std::vector<int64_t>(n, -1);
  }
  const std::vector<const FeatureSet*> ptrs{&gens[0], &gens[1], &gens[2]};
  const auto order = old_item_order(n, 7);
  // Fractions 1/3 each: cumulative rounds 3, 6, 9 -> order[0..3) gen 0, [3..6) gen 1, [6..9) gen 2.
  const FeatureSet m = generations_gallery(ptrs, {1.0 / 3, 1.0 / 3, 1.0 / 3}, 7);
  EXPECT_EQ(m.d, 2);  // min(4, 3, 2)
  for (int64_t t = 0; t < n; ++t) {
    const int64_t i = order[static_cast<size_t>(t)];
    EXPECT_EQ(m.features[i * 2], float(t / 3 + 1)) << "position " << t;
    EXPECT_EQ(m.features[i * 2 + 1], float(t / 3 + 1));
  }
  // A generation with fraction 0 does not narrow the rows: {0.5, 0, 0.5} keeps min(4, 2).
  const FeatureSet two = generations_gallery(ptrs, {0.5, 0.0, 0.5}, 7);
  EXPECT_EQ(two.d, 2);
  int64_t from_first = 0;
  for (int64_t i = 0; i < n; ++i) from_first += two.features[i * 2] == 1.f;
  EXPECT_EQ(from_first, 5);  // round(4.5) = 5 (half away from zero), the rest from v3
  // Bad fractions.
  EXPECT_THROW(generations_gallery(ptrs, {0.5, 0.2, 0.2}, 7), dualtune::Error);
  EXPECT_THROW(generations_gallery(ptrs, {0.5, 0.5}, 7), dualtune::Error);
  EXPECT_THROW(generations_gallery(ptrs, {1.5, -0.5, 0.0}, 7), dualtune::Error);
}

TEST(GenerationsGallery, TwoGenerationsAreTheMixedGallery) {
  const auto [o, nw] = old_and_new(120, 6, 10, 3);
  for (double r : {0.0, 0.25, 0.5, 1.0}) {
    const FeatureSet a = mixed_gallery(nw, o, r, 9);
    const FeatureSet b = generations_gallery({&o, &nw}, {r, 1.0 - r}, 9);
    EXPECT_EQ(a.d, b.d) << r;
    EXPECT_EQ(a.features, b.features) << r;
  }
}

TEST(MixedGallery, RejectsDifferentItems) {
  auto [o, nw] = old_and_new(20, 4, 4, 1);
  o.labels[3] = 99;
  EXPECT_THROW(mixed_gallery(nw, o, 0.5, 0), dualtune::Error);
}

TEST(Verdict, CriterionAndGain) {
  // old/old 0.5, new/new 0.8, new→old 0.6: 0.6 > 0.5 compatible; gain = 0.1/0.3 = 1/3
  Verdict v = judge_compatibility(0.5, 0.8, 0.6);
  EXPECT_TRUE(v.compatible);
  EXPECT_NEAR(v.gain, 1.0 / 3, 1e-12);
  // new→old 0.4 < 0.5: not compatible; gain = -0.1/0.3 = -1/3
  v = judge_compatibility(0.5, 0.8, 0.4);
  EXPECT_FALSE(v.compatible);
  EXPECT_NEAR(v.gain, -1.0 / 3, 1e-12);
  // equal is not compatible (strict criterion); gain 0
  v = judge_compatibility(0.5, 0.8, 0.5);
  EXPECT_FALSE(v.compatible);
  EXPECT_DOUBLE_EQ(v.gain, 0.0);
  // new/new == old/old: gain undefined
  EXPECT_TRUE(std::isnan(judge_compatibility(0.5, 0.5, 0.6).gain));
}

TEST(EvaluateCompatibility, MatrixUpgradesAndVerdict) {
  const auto [o, nw] = old_and_new(150, 6, 10, 3);
  EvalOptions opt;
  opt.mixed_fractions = {0, 0.5, 1};
  const CompatibilityReport rep =
      evaluate_compatibility({loo_model("old", o), loo_model("new", nw)}, "old", opt);
  ASSERT_EQ(rep.models, (std::vector<std::string>{"old", "new"}));
  EXPECT_EQ(rep.dims, (std::vector<int64_t>{6, 10}));
  ASSERT_EQ(rep.upgrades.size(), 1u);
  const UpgradeResult& u = rep.upgrades[0];
  EXPECT_EQ(u.new_model, "new");
  expect_same(u.old_old, rep.matrix[0][0]);
  expect_same(u.new_new, rep.matrix[1][1]);
  expect_same(u.new_old, rep.matrix[1][0]);
  ASSERT_EQ(u.mixed.size(), 3u);
  // The endpoints (taken from the matrix) equal evaluating the mixed galleries themselves.
  expect_same(u.mixed[0].metrics, evaluate_case(nw, mixed_gallery(nw, o, 0.0, opt.seed), opt));
  expect_same(u.mixed[2].metrics, evaluate_case(nw, mixed_gallery(nw, o, 1.0, opt.seed), opt));
  expect_same(u.mixed[0].metrics, u.new_new);
  expect_same(u.mixed[2].metrics, u.new_old);
  EXPECT_EQ(u.mixed[0].flips.negative_flips, u.flips_new_new.negative_flips);
  EXPECT_EQ(u.mixed[2].flips.positive_flips, u.flips_new_old.positive_flips);
  EXPECT_EQ(u.mixed[1].old_items, 75);
  const Verdict v = judge_compatibility(u.old_old.map, u.new_new.map, u.new_old.map);
  EXPECT_EQ(u.map.compatible, v.compatible);
  EXPECT_EQ(u.map.gain, v.gain);
  // independent random models are not compatible: new→old is near chance
  EXPECT_FALSE(u.map.compatible);

  EXPECT_THROW(evaluate_compatibility({loo_model("old", o)}, "missing", opt), dualtune::Error);
  EXPECT_THROW(evaluate_compatibility({loo_model("a", o), loo_model("a", nw)}, "", opt), dualtune::Error);
}

TEST(EvaluateCompatibility, ExplicitUpgradeAgainstAStandInGallery) {
  // "h" stands for the old gallery mapped into the new space: the cross-test and the
  // mixed galleries use it, the reference old/old stays the old model's own.
  auto [o, nw] = old_and_new(120, 6, 8, 5);
  FeatureSet h = nw;  // a perfect transform: h(old) = the new features
  EvalOptions opt;
  opt.mixed_fractions = {0, 0.5, 1};
  opt.upgrades = {{"new", "old", "h"}, {"new", "old", ""}};
  const auto rep = evaluate_compatibility({loo_model("old", o), loo_model("new", nw), loo_model("h", h)}, "old", opt);
  ASSERT_EQ(rep.upgrades.size(), 2u);
  const UpgradeResult& t = rep.upgrades[0];
  EXPECT_EQ(t.old_model, "old");
  EXPECT_EQ(t.gallery_model, "h");
  expect_same(t.old_old, rep.matrix[0][0]);
  expect_same(t.new_old, rep.matrix[1][2]);
  expect_same(t.new_old, t.new_new);  // h(old) = new: new→h(old) is new/new
  expect_same(t.mixed[1].metrics, t.new_new);
  EXPECT_TRUE(t.map.compatible);
  EXPECT_DOUBLE_EQ(t.map.gain, 1.0);
  EXPECT_EQ(t.flips_new_old.negative_flips, t.flips_new_new.negative_flips);
  const UpgradeResult& plain = rep.upgrades[1];
  EXPECT_EQ(plain.gallery_model, "old");
  expect_same(plain.new_old, rep.matrix[1][0]);
  // Unknown names are errors naming the models given.
  opt.upgrades = {{"new", "old", "h2"}};
  try {
    evaluate_compatibility({loo_model("old", o), loo_model("new", nw)}, "old", opt);
    FAIL() << "unknown gallery model accepted";
  } catch (const dualtune::Error& e) {
    EXPECT_NE(std::string(e.what()).find("gallery model 'h2' is not among the models given (old, new)"),
              std::string::npos)
        << e.what();
  }
}

TEST(EvaluateCompatibility, LineageJudgesEveryPairAndMixesGenerations) {
  EXPECT_TRUE(lineage_upgrades({"v1"}).empty());
  const auto ups = lineage_upgrades({"v1", "v2", "v3"});
  ASSERT_EQ(ups.size(), 3u);
  EXPECT_EQ(ups[0].new_model + ups[0].old_model, "v2v1");
  EXPECT_EQ(ups[1].new_model + ups[1].old_model, "v3v2");
  EXPECT_EQ(ups[2].new_model + ups[2].old_model, "v3v1");
  EXPECT_TRUE(lineage_mixes({"v1", "v2"}).empty());
  const auto mixes = lineage_mixes({"v1", "v2", "v3"});
  ASSERT_EQ(mixes.size(), 2u);
  EXPECT_EQ(mixes[0].galleries, (std::vector<std::string>{"v1", "v2", "v3"}));
  EXPECT_NEAR(mixes[0].fractions[1], 1.0 / 3, 1e-15);
  EXPECT_EQ(mixes[1].galleries, (std::vector<std::string>{"v1", "v2"}));
  EXPECT_EQ(mixes[1].fractions, (std::vector<double>{0.5, 0.5}));

  const auto [v1, v2] = old_and_new(90, 6, 8, 7);
  FeatureSet v3 = v2;  // the same items, two more components
  v3.d = 10;
  v3.features.clear();
  for (int64_t i = 0; i < v2.n; ++i) {
    for (int64_t k = 0; k < 8; ++k) v3.features.push_back(v2.features[i * 8 + k]);
    v3.features.push_back(float(i % 3));
    v3.features.push_back(1.f);
  }
  EvalOptions opt;
  opt.mixed_fractions = {0, 1};
  opt.upgrades = ups;
  opt.generation_mixes = mixes;
  const auto rep =
      evaluate_compatibility({loo_model("v1", v1), loo_model("v2", v2), loo_model("v3", v3)}, "v1", opt);
  ASSERT_EQ(rep.upgrades.size(), 3u);
  expect_same(rep.upgrades[1].old_old, rep.matrix[1][1]);  // v3 against v2: v2/v2 is the reference
  expect_same(rep.upgrades[1].new_old, rep.matrix[2][1]);
  ASSERT_EQ(rep.generation_mixes.size(), 2u);
  const FeatureSet thirds = generations_gallery({&v1, &v2, &v3}, mixes[0].fractions, opt.seed);
  expect_same(rep.generation_mixes[0].metrics, evaluate_case(v3, thirds, opt));
}

// Per-class upgrade diagnostics (class_diagnostics.h) on a hand-worked 2-D case, and the
// report files they are written to.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include "dualtune/eval/class_diagnostics.h"
#include "dualtune/report/diagnostics.h"
#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"
#include "feature_set_2d.h"

using namespace dualtune::eval;
using dualtune::features::FeatureSet;

namespace {

FeatureSet set_of(std::vector<float> f, std::vector<int64_t> labels) {
  FeatureSet s = dualtune_test::feature_set_2d(std::move(f), std::move(labels));
  s.class_names = {"a", "b"};
  return s;
}

// Items 0, 1 class a (seen by the old model), 2, 3 class b (unseen), 4 junk (label −1,
// pointing between everything: it must change nothing).
//   item   old o        new n
//    0 a   (1, 0)       (.8, .6)
//    1 a   (.6, .8)     (1, 0)
//    2 b   (0, 1)       (−.6, .8)
//    3 b   (−.8, .6)    (0, 1)
//    4 -   (.7071,.7071) (.7071,.7071)
// Old class sums: C_a = o0 + o1 = (1.6, .8), C_b = o2 + o3 = (−.8, 1.6), |C_a| = |C_b| = √3.2.
const std::vector<int64_t> kLabels{0, 0, 1, 1, -1};
FeatureSet old_set() { return set_of({1, 0, .6f, .8f, 0, 1, -.8f, .6f, .7071f, .7071f}, kLabels); }
FeatureSet new_set() { return set_of({.8f, .6f, 1, 0, -.6f, .8f, 0, 1, .7071f, .7071f}, kLabels); }

// old/old: q0 o1 .6 first (a) right, AP 1; q1 o2 .8 > o0 .6: wrong, AP 1/2; q2 o1 .8 > o3 .6:
// wrong, AP 1/2; q3 o2 .6 first: right, AP 1. new/new and new→old: every query right, AP 1
// (new→old: q0 o1 .96, q1 o0 1, q2 o3 .96, q3 o2 1 are each the top score).
// Centre margins, own class mean without the query's item (C_a − o0 = o1, ...):
//   old: q0 .6 − (−.8/√3.2) = 1.04721, q1 .6 − .8/√3.2 = .15279, q2 .15279, q3 1.04721
//   new: q0 .96 − .32/√3.2 = .78111, q1 1 + .8/√3.2 = 1.44721,
//        q2 .96 + .32/√3.2 = 1.13889, q3 1 − .8/√3.2 = .55279
// NN margins: old q0 .6 − 0, q1 .6 − .8, q2 .6 − .8, q3 .6 − 0;
//             new q0 .96 − .6, q1 1 − 0, q2 .96 − .28, q3 1 − .8.
// Alignment: new sums (1.8, .6) and (−.6, 1.8) against C_a, C_b: 3.36 / (√3.6 √3.2) = .98995
// for both; each new mean is nearest its own old mean (the other cosines are ∓.48 / ...).
constexpr double kS = 1.7888543819998317;  // √3.2

}  // namespace

TEST(ClassDiagnostics, MatchesTheHandWorkedCase) {
  EvalOptions opt;
  opt.threads = 1;
  const UpgradeDiagnostics d = diagnose_upgrade(old_set(), new_set(), "old", "new", {"a"}, opt);
  ASSERT_EQ(d.classes.size(), 2u);
  ASSERT_EQ(d.groups.size(), 3u);
  const auto& a = d.classes[0].values;
  const auto& b = d.classes[1].values;
  EXPECT_EQ(d.classes[0].name, "a");
  EXPECT_TRUE(d.classes[0].seen);
  EXPECT_FALSE(d.classes[1].seen);
  EXPECT_EQ(d.classes[0].items, 2);
  EXPECT_EQ(a.queries, 2);
  const double tol = 1e-5;
  for (const auto* v : {&a, &b}) {
    EXPECT_NEAR(v->ap_old_old, 0.75, tol);
    EXPECT_NEAR(v->top1_old_old, 0.5, tol);
    EXPECT_NEAR(v->ap_new_new, 1.0, tol);
    EXPECT_NEAR(v->top1_new_new, 1.0, tol);
    EXPECT_NEAR(v->ap_new_old, 1.0, tol);
    EXPECT_NEAR(v->top1_new_old, 1.0, tol);
    EXPECT_NEAR(v->centre_margin_old, 0.6, tol);  // (1.04721 + .15279) / 2
    EXPECT_NEAR(v->nn_margin_old, 0.2, tol);
    EXPECT_NEAR(v->alignment, 3.36 / (std::sqrt(3.6) * kS), tol);
    EXPECT_NEAR(v->own_mean_rank1, 1.0, tol);
  }
  EXPECT_NEAR(a.centre_margin_new, ((.96 - .32 / kS) + (1 + .8 / kS)) / 2, tol);
  EXPECT_NEAR(b.centre_margin_new, ((.96 + .32 / kS) + (1 - .8 / kS)) / 2, tol);
  EXPECT_NEAR(a.nn_margin_new, (0.36 + 1.0) / 2, tol);
  EXPECT_NEAR(b.nn_margin_new, (0.68 + 0.2) / 2, tol);

  const auto& all = d.groups[0];
  EXPECT_EQ(all.name, "all");
  EXPECT_EQ(all.classes, 2);
  EXPECT_EQ(all.values.queries, 4);
  EXPECT_NEAR(all.values.centre_margin_new, (.96 - .32 / kS + 1 + .8 / kS + .96 + .32 / kS + 1 - .8 / kS) / 4, tol);
  EXPECT_NEAR(all.values.nn_margin_new, (0.36 + 1.0 + 0.68 + 0.2) / 4, tol);
  EXPECT_EQ(d.groups[1].classes, 1);
  EXPECT_NEAR(d.groups[1].values.nn_margin_new, a.nn_margin_new, tol);
  EXPECT_NEAR(d.groups[2].values.nn_margin_new, b.nn_margin_new, tol);
}

TEST(ClassDiagnostics, OnlyTheAllGroupWithoutSeenClasses) {
  EvalOptions opt;
  const UpgradeDiagnostics d = diagnose_upgrade(old_set(), new_set(), "old", "new", {}, opt);
  ASSERT_EQ(d.groups.size(), 1u);
  EXPECT_EQ(d.groups[0].name, "all");
}

TEST(ClassDiagnostics, RejectsDifferentItemsAndTheReidProtocol) {
  EvalOptions opt;
  FeatureSet other = new_set();
  other.labels[0] = 1;
  EXPECT_THROW(diagnose_upgrade(old_set(), other, "old", "new", {}, opt), dualtune::Error);
  opt.protocol = "reid";
  EXPECT_THROW(diagnose_upgrade(old_set(), new_set(), "old", "new", {}, opt), dualtune::Error);
}

TEST(ClassDiagnostics, DiagnoseAllSkipsTheOldModelAndNeedsIt) {
  EvalOptions opt;
  const std::vector<ModelFeatures> models{loo_model("old", old_set()), loo_model("new", new_set())};
  const auto d = diagnose_all(models, "old", {"a"}, opt);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].new_model, "new");
  EXPECT_THROW(diagnose_all(models, "missing", {}, opt), dualtune::Error);
}

// Given the compatibility report of the same features, the diagnostics take its per-query
// results instead of ranking the three cases again: the same values. An edited report
// entry shows through (it is used); with a model whose gallery set is not its query set,
// the report's cases are other cases, and the diagnostics rank their own.
TEST(ClassDiagnostics, ReusesTheReportsPerQueryResultsOfTheSameCases) {
  EvalOptions opt;
  opt.tar_far = false;
  const std::vector<ModelFeatures> models{loo_model("old", old_set()), loo_model("new", new_set())};
  EXPECT_TRUE(evaluate_compatibility(models, "old", opt).case_queries.empty());  // kept only when asked
  opt.keep_case_queries = true;
  const auto rep = evaluate_compatibility(models, "old", opt);
  EXPECT_EQ(rep.case_queries.size(), 4u);  // 2 × 2 cases
  const auto plain = diagnose_all(models, "old", {"a"}, opt);
  const auto reused = diagnose_all(models, "old", {"a"}, opt, &rep);
  ASSERT_EQ(plain.size(), 1u);
  ASSERT_EQ(reused.size(), 1u);
  ASSERT_EQ(reused[0].groups.size(), plain[0].groups.size());
  for (size_t g = 0; g < plain[0].groups.size(); ++g) {
    const auto &a = plain[0].groups[g].values, &b = reused[0].groups[g].values;
    EXPECT_EQ(a.queries, b.queries);
    EXPECT_EQ(a.ap_old_old, b.ap_old_old);
    EXPECT_EQ(a.ap_new_new, b.ap_new_new);
    EXPECT_EQ(a.ap_new_old, b.ap_new_old);
    EXPECT_EQ(a.top1_old_old, b.top1_old_old);
    EXPECT_EQ(a.top1_new_new, b.top1_new_new);
    EXPECT_EQ(a.top1_new_old, b.top1_new_old);
  }
  auto edited = rep;
  for (auto& ap : edited.case_queries.at({"new", "old"}).ap) ap = 0.25;
  const auto shown = diagnose_all(models, "old", {"a"}, opt, &edited);
  EXPECT_DOUBLE_EQ(shown[0].groups[0].values.ap_new_old, 0.25);
  EXPECT_EQ(shown[0].groups[0].values.ap_new_new, plain[0].groups[0].values.ap_new_new);

  // A report of other block sizes is not used (its scores may round differently).
  auto other_blocks = edited;
  other_blocks.max_block_bytes = opt.max_block_bytes / 2;
  EXPECT_EQ(diagnose_all(models, "old", {"a"}, opt, &other_blocks)[0].groups[0].values.ap_new_old,
            plain[0].groups[0].values.ap_new_old);

  auto split = models;
  split[1].gallery = old_set();  // same items and labels, other features
  const auto own = diagnose_all(split, "old", {"a"}, opt, &edited);
  EXPECT_EQ(own[0].groups[0].values.ap_new_old, plain[0].groups[0].values.ap_new_old);
}

TEST(ClassDiagnostics, WritesJsonAndMarkdown) {
  EvalOptions opt;
  const auto d = diagnose_all({loo_model("old", old_set()), loo_model("new", new_set())}, "old", {"a"}, opt);
  const auto dir = std::filesystem::temp_directory_path() / ("dt_diag_" + std::to_string(::getpid()));
  dualtune::report::write_diagnostics(d, dir.string());
  const auto j = nlohmann::json::parse(dualtune::read_file((dir / "diagnostics.json").string()));
  EXPECT_EQ(j["upgrades"][0]["new_model"], "new");
  EXPECT_EQ(j["upgrades"][0]["classes"][1]["seen"], false);
  EXPECT_NEAR(j["upgrades"][0]["groups"][0]["values"]["nn_margin"]["new"].get<double>(), 0.56, 1e-5);
  const std::string md = dualtune::read_file((dir / "diagnostics.md").string());
  EXPECT_NE(md.find("| new | seen by the old model (1) | 2 | 100.00 / 100.00 | 75.00 / 50.00 |"), std::string::npos) << md;
  EXPECT_NE(md.find("### new by class"), std::string::npos);
  std::filesystem::remove_all(dir);
}

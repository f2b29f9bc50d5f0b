// Negative / positive flip rates (flip_rate.h) on a hand-worked six-item case with ties
// and a junk item, and per-query top-1 against CMC rank-1 and a brute-force ranking.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "dualtune/eval/evaluate.h"
#include "dualtune/eval/flip_rate.h"
#include "dualtune/eval/mixed_gallery.h"
#include "dualtune/util/error.h"
#include "feature_set_2d.h"

using namespace dualtune::eval;
using dualtune::features::FeatureSet;

namespace {

constexpr Top1 R = Top1::kRight, W = Top1::kWrong, S = Top1::kSkipped;

// Axis-aligned 2-D unit features: every cosine is exactly 1, 0 or −1, so ties are exact.
FeatureSet axis_set(std::vector<float> f, std::vector<int64_t> labels) {
  return dualtune_test::feature_set_2d(std::move(f), std::move(labels));
}

// Six items, leave-one-out. Labels: 0, 1 = A; 2, 3, 4 = B; 5 = junk (−1: never in a
// gallery, never a query, so N = 5).
//   item      old       new
//    0 A     (1, 0)    (1, 0)
//    1 A     (1, 0)    (0,-1)
//    2 B     (0, 1)    (0, 1)
//    3 B     (1, 0)    (0, 1)
//    4 B     (0,-1)    (-1,0)
//    5 junk  (0, 1)    (1, 0)
const std::vector<int64_t> kLabels{0, 0, 1, 1, 1, -1};
FeatureSet old_features() { return axis_set({1, 0, 1, 0, 0, 1, 1, 0, 0, -1, 0, 1}, kLabels); }
FeatureSet new_features() { return axis_set({1, 0, 0, -1, 0, 1, 0, 1, -1, 0, 1, 0}, kLabels); }

// old/old (scores of g0..g5; x = excluded: self or junk; ties go to the lower index):
//   q0 A: x 1 0 1 0 x   tie at 1: g1 (A) before g3 (B)            right
//   q1 A: 1 x 0 1 0 x   tie at 1: g0 (A) before g3 (B)            right
//   q2 B: 0 0 x 0 -1 x  tie at 0: g0 (A) first (junk g5 = 1 out)  wrong
//   q3 B: 1 1 0 x 0 x   g0 (A)                                    wrong
//   q4 B: 0 0 -1 0 x x  tie at 0: g0 (A) first                    wrong
const std::vector<Top1> kOldOld{R, R, W, W, W, S};
// new/new:
//   q0 A: x 0 0 0 -1 x  tie at 0: g1 (A) first; junk g5 = 1 would be top if it counted   right
//   q1 A: 0 x -1 -1 0 x tie at 0: g0 (A) before g4 (B)            right
//   q2 B: 0 -1 x 1 0 x  g3 (B)                                    right   (positive flip)
//   q3 B: 0 -1 1 x 0 x  g2 (B)                                    right   (positive flip)
//   q4 B: -1 0 0 0 x x  tie at 0: g1 (A) first                    wrong
const std::vector<Top1> kNewNew{R, R, R, R, W, S};
// new→old (new query, old gallery):
//   q0 A: x 1 0 1 0 x   tie at 1: g1 (A) before g3 (B)            right
//   q1 A: 0 x -1 0 1 x  g4 (B)                                    wrong   (negative flip)
//   q2 B: 0 0 x 0 -1 x  tie at 0: g0 (A) first                    wrong
//   q3 B: 0 0 1 x -1 x  g2 (B)                                    right   (positive flip)
//   q4 B: -1 -1 0 -1 x x  g2 (B)                                  right   (positive flip)
const std::vector<Top1> kNewOld{R, W, W, R, R, S};

}  // namespace

TEST(FlipRate, CountsFlipsOverQueriesEvaluatedInBoth) {
  // before: R R W W S R ; after: W R R S W R -> compared: 0 (R->W neg), 1 (R->R), 2 (W->R pos),
  // 5 (R->R); 3 and 4 skipped on one side. N = 4, NFR = 1/4, PFR = 1/4.
  const FlipRates f = flip_rates({R, R, W, W, S, R}, {W, R, R, S, W, R});
  EXPECT_EQ(f.queries, 4);
  EXPECT_EQ(f.negative_flips, 1);
  EXPECT_EQ(f.positive_flips, 1);
  EXPECT_DOUBLE_EQ(f.negative, 0.25);
  EXPECT_DOUBLE_EQ(f.positive, 0.25);
  const FlipRates none = flip_rates({S, R}, {W, S});
  EXPECT_EQ(none.queries, 0);
  EXPECT_TRUE(std::isnan(none.negative) && std::isnan(none.positive));
  EXPECT_THROW(flip_rates({R}, {R, R}), dualtune::Error);
  EXPECT_EQ(top1_outcomes({1, 0, 2, 50}), (std::vector<Top1>{R, S, W, W}));
}

TEST(FlipRate, PerQueryTop1OfHandWorkedCasesWithTiesAndJunk) {
  const FeatureSet o = old_features(), n = new_features();
  EvalOptions opt;
  std::vector<Top1> t;
  Metrics m = evaluate_case(o, o, opt, &t);
  EXPECT_EQ(t, kOldOld);
  EXPECT_DOUBLE_EQ(m.rank1, 2.0 / 5);
  m = evaluate_case(n, n, opt, &t);
  EXPECT_EQ(t, kNewNew);
  EXPECT_DOUBLE_EQ(m.rank1, 4.0 / 5);
  m = evaluate_case(n, o, opt, &t);
  EXPECT_EQ(t, kNewOld);
  EXPECT_DOUBLE_EQ(m.rank1, 3.0 / 5);
}

TEST(FlipRate, UpgradeReportsHandWorkedFlips) {
  EvalOptions opt;
  opt.mixed_fractions = {0, 0.5, 1};
  opt.seed = 3;
  const auto rep =
      evaluate_compatibility({loo_model("old", old_features()), loo_model("new", new_features())}, "old", opt);
  ASSERT_EQ(rep.upgrades.size(), 1u);
  const UpgradeResult& u = rep.upgrades[0];
  // new/new: no negative flip, positive flips q2, q3.
  EXPECT_EQ(u.flips_new_new.queries, 5);
  EXPECT_EQ(u.flips_new_new.negative_flips, 0);
  EXPECT_EQ(u.flips_new_new.positive_flips, 2);
  EXPECT_DOUBLE_EQ(u.flips_new_new.negative, 0.0);
  EXPECT_DOUBLE_EQ(u.flips_new_new.positive, 0.4);
  // new→old: negative flip q1, positive flips q3, q4.
  EXPECT_EQ(u.flips_new_old.queries, 5);
  EXPECT_EQ(u.flips_new_old.negative_flips, 1);
  EXPECT_EQ(u.flips_new_old.positive_flips, 2);
  EXPECT_DOUBLE_EQ(u.flips_new_old.negative, 0.2);
  EXPECT_DOUBLE_EQ(u.flips_new_old.positive, 0.4);
  // Rank-1 moves by exactly PFR − NFR.
  EXPECT_NEAR(u.new_new.rank1 - u.old_old.rank1, u.flips_new_new.positive - u.flips_new_new.negative, 1e-12);
  EXPECT_NEAR(u.new_old.rank1 - u.old_old.rank1, u.flips_new_old.positive - u.flips_new_old.negative, 1e-12);
  // Mixed galleries: r = 0 is the new gallery, r = 1 the old one; r = 0.5 as computed from its gallery.
  ASSERT_EQ(u.mixed.size(), 3u);
  EXPECT_EQ(u.mixed[0].flips.negative_flips, 0);
  EXPECT_EQ(u.mixed[0].flips.positive_flips, 2);
  EXPECT_EQ(u.mixed[2].flips.negative_flips, 1);
  EXPECT_EQ(u.mixed[2].flips.positive_flips, 2);
  std::vector<Top1> half;
  evaluate_case(new_features(), mixed_gallery(new_features(), old_features(), 0.5, 3), opt, &half);
  const FlipRates f = flip_rates(kOldOld, half);
  EXPECT_EQ(u.mixed[1].flips.negative_flips, f.negative_flips);
  EXPECT_EQ(u.mixed[1].flips.positive_flips, f.positive_flips);
  EXPECT_EQ(u.mixed[1].flips.queries, 5);
}

TEST(FlipRate, HandWorkedMixedGallery) {
  // Gallery items 0-2 carry new features, 3-5 old ones; queries are new:
  //   q0 A: x 0 0 1 0 x    g3 (B)                          wrong  (negative flip)
  //   q1 A: 0 x -1 0 1 x   g4 (B)                          wrong  (negative flip)
  //   q2 B: 0 -1 x 0 -1 x  tie at 0: g0 (A) first          wrong
  //   q3 B: 0 -1 1 x -1 x  g2 (B)                          right  (positive flip)
  //   q4 B: -1 0 0 -1 x x  tie at 0: g1 (A) before g2 (B)  wrong
  FeatureSet mixed = new_features();
  const FeatureSet o = old_features();
  std::copy(o.features.begin() + 6, o.features.end(), mixed.features.begin() + 6);
  std::vector<Top1> t;
  evaluate_case(new_features(), mixed, EvalOptions{}, &t);
  EXPECT_EQ(t, (std::vector<Top1>{W, W, W, R, W, S}));
  const FlipRates f = flip_rates(kOldOld, t);
  EXPECT_EQ(f.queries, 5);
  EXPECT_DOUBLE_EQ(f.negative, 0.4);
  EXPECT_DOUBLE_EQ(f.positive, 0.2);
}

// Per-query top-1 against its definition on random data with many exact ties (axis
// features, cosines in {−1, 0, 1}), junk items and, for reid, same id + camera
// exclusions: brute force over the valid gallery, score descending then index ascending.
// The fraction right equals CMC rank-1 exactly.
TEST(FlipRate, PerQueryTop1AgreesWithCmcRank1AndBruteForce) {
  std::mt19937 rng(5);
  const float axes[4][2] = {{1, 0}, {0, 1}, {-1, 0}, {0, -1}};
  for (const char* protocol : {"loo", "reid"}) {
    for (int trial = 0; trial < 20; ++trial) {
      const int64_t n = 30 + static_cast<int64_t>(rng() % 60);
      auto random_set = [&](bool same_labels_as_first, const FeatureSet* first) {
        FeatureSet s;
        s.n = n;
        s.d = 2;
        for (int64_t i = 0; i < n; ++i) {
          const auto& a = axes[rng() % 4];
          s.features.insert(s.features.end(), {a[0], a[1]});
          if (same_labels_as_first) continue;
          s.labels.push_back(rng() % 8 == 0 ? -1 : static_cast<int64_t>(rng() % 4));
          s.cams.push_back(static_cast<int64_t>(rng() % 3));
        }
        if (same_labels_as_first) {
          s.labels = first->labels;
          s.cams = first->cams;
        }
        return s;
      };
      const FeatureSet q = random_set(false, nullptr);
      const FeatureSet g = std::string(protocol) == "loo" ? random_set(true, &q) : random_set(false, nullptr);
      EvalOptions opt;
      opt.protocol = protocol;
      opt.tar_far = false;
      std::vector<Top1> t;
      const Metrics m = evaluate_case(q, g, opt, &t);
      ASSERT_EQ(t.size(), static_cast<size_t>(n));
      int64_t right = 0, evaluated = 0;
      for (int64_t i = 0; i < n; ++i) {
        // Brute force: valid gallery items, best by (score desc, index asc); skipped without a positive.
        int64_t best = -1, positives = 0;
        float best_s = 0;
        for (int64_t j = 0; j < n; ++j) {
          const bool excluded = g.labels[j] < 0 || (std::string(protocol) == "loo"
                                                        ? j == i
                                                        : g.labels[j] == q.labels[i] && g.cams[j] == q.cams[i]);
          if (excluded) continue;
          positives += g.labels[j] == q.labels[i];
          const float s = q.features[2 * i] * g.features[2 * j] + q.features[2 * i + 1] * g.features[2 * j + 1];
          if (best < 0 || s > best_s) best = j, best_s = s;
        }
        const Top1 expected =
            q.labels[i] < 0 || positives == 0 ? S : (g.labels[best] == q.labels[i] ? R : W);
        ASSERT_EQ(t[i], expected) << protocol << " trial " << trial << " query " << i;
        evaluated += expected != S;
        right += expected == R;
      }
      ASSERT_EQ(m.queries, evaluated);
      if (evaluated > 0) ASSERT_EQ(static_cast<double>(right) / static_cast<double>(evaluated), m.rank1);
    }
  }
}

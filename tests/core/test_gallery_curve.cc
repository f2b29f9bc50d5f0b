// The backfill curve against eval's mixed galleries and hand-computed values; the score
// calibration fit against its closed form.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "dualtune/eval/evaluate.h"
#include "dualtune/eval/mixed_gallery.h"
#include "dualtune/gallery/curve.h"
#include "dualtune/gallery/merge.h"
#include "dualtune/util/error.h"

using namespace dualtune::gallery;
using dualtune::features::FeatureSet;

namespace {

CurveData clustered(int64_t n, int64_t d_old, int64_t d_new, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.f, 1.f);
  const int classes = 8;
  std::vector<float> co(classes * d_old), cn(classes * d_new);
  for (auto& c : co) c = g(rng);
  for (auto& c : cn) c = g(rng);
  CurveData d;
  d.n = n;
  d.d_old = d_old;
  d.d_new = d_new;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = static_cast<int64_t>(rng() % classes);
    d.labels.push_back(c);
    for (int64_t k = 0; k < d_old; ++k) d.old_vectors.push_back(co[c * d_old + k] + 1.6f * g(rng));
    for (int64_t k = 0; k < d_new; ++k) d.new_vectors.push_back(cn[c * d_new + k] + 1.0f * g(rng));
  }
  d.nq = n;
  d.queries = d.new_vectors;
  d.query_labels = d.labels;
  for (int64_t i = 0; i < n; ++i) d.query_self.push_back(i);
  return d;
}

FeatureSet as_features(int64_t n, int64_t d, const std::vector<float>& x, const std::vector<int64_t>& labels) {
  FeatureSet f;
  f.n = n;
  f.d = d;
  f.features = x;
  f.labels = labels;
  f.cams.assign(static_cast<size_t>(n), -1);
  f.paths.assign(static_cast<size_t>(n), "");
  return f;
}

}  // namespace

TEST(BackfillCurve, RawMergeEqualsEvalMixedGalleriesExactly) {
  const int64_t n = 200;
  const CurveData d = clustered(n, 8, 8, 3);
  // eval: items order[t], t < round(r·n), are old. Backfill order = that order reversed,
  // so at f = 1 − r the backfilled items are exactly eval's new ones.
  const uint64_t seed = 7;
  const auto eval_order = dualtune::eval::old_item_order(n, seed);
  CurveSpec spec;
  spec.order_name = "reverse";
  spec.order.assign(eval_order.rbegin(), eval_order.rend());
  spec.merge = Merge::kRaw;
  const std::vector<double> fractions{0, 0.25, 0.5, 0.75, 1};
  const auto curves = backfill_curves(d, {spec}, fractions, 1);
  ASSERT_EQ(curves.size(), 1u);
  const FeatureSet nf = as_features(n, 8, d.new_vectors, d.labels), of = as_features(n, 8, d.old_vectors, d.labels);
  dualtune::eval::EvalOptions eo;
  eo.tar_far = false;
  eo.threads = 1;
  for (size_t i = 0; i < fractions.size(); ++i) {
    const double r = 1 - fractions[i];
    const auto m = dualtune::eval::evaluate_case(nf, dualtune::eval::mixed_gallery(nf, of, r, seed), eo);
    EXPECT_DOUBLE_EQ(curves[0].points[i].map, m.map) << "f = " << fractions[i];
    EXPECT_DOUBLE_EQ(curves[0].points[i].top1, m.rank1) << "f = " << fractions[i];
    EXPECT_EQ(curves[0].points[i].backfilled, static_cast<int64_t>(std::llround(fractions[i] * n)));
  }
  // Area: trapezoids over [0, 1].
  double area = 0;
  for (size_t i = 1; i < fractions.size(); ++i)
    area += 0.25 * (curves[0].points[i].map + curves[0].points[i - 1].map) / 2;
  EXPECT_NEAR(curves[0].area_map, area, 1e-12);
}

TEST(BackfillCurve, RankMergeOnAHandComputedGallery) {
  // Gallery of 4 items, 1-d embeddings (cosine = sign): labels 0, 0, 1, 1. One query of
  // label 0 that is not in the gallery. Old scores (q·old) via 2-d vectors.
  CurveData d;
  d.n = 4;
  d.d_old = 2;
  d.d_new = 2;
  // new/new cosines: item0 0.9 (positive), item1 0.2 (positive), item2 0.95, item3 -0.5
  // new→old cosines: item0 0.1, item1 0.8, item2 0.3, item3 0.6
  auto unit = [](double c) { return std::vector<float>{float(c), float(std::sqrt(1 - c * c))}; };
  for (double c : {0.9, 0.2, 0.95, -0.5}) { auto v = unit(c); d.new_vectors.insert(d.new_vectors.end(), v.begin(), v.end()); }
  for (double c : {0.1, 0.8, 0.3, 0.6}) { auto v = unit(c); d.old_vectors.insert(d.old_vectors.end(), v.begin(), v.end()); }
  d.labels = {0, 0, 1, 1};
  d.nq = 1;
  d.queries = {1, 0};
  d.query_labels = {0};
  d.query_self = {-1};
  // Backfill order 2, 0, 3, 1; at f = 0.5 items 2 and 0 are new.
  CurveSpec raw{"o", {2, 0, 3, 1}, Merge::kRaw, {}, {}}, rank = raw;
  rank.merge = Merge::kRank;
  const auto c = backfill_curves(d, {raw, rank}, {0.5}, 1);
  // raw keys: item2 0.95, item0 0.9, item1 0.8, item3 0.6 -> positives at ranks 2, 3:
  // AP = (1/2 + 2/3) / 2.
  EXPECT_NEAR(c[0].points[0].map, (1.0 / 2 + 2.0 / 3) / 2, 1e-12);
  EXPECT_EQ(c[0].points[0].top1, 0.0);
  // rank keys: new {2: 0.95 -> r1, 0: 0.9 -> r2} = 0.75, 0.25; old {1: 0.8 -> r1, 3: 0.6
  // -> r2} = 0.75, 0.25. Ties by index: item1 (0.75) before item2 (0.75), item0 (0.25)
  // before item3 (0.25): ranking 1, 2, 0, 3 -> positives at 1, 3: AP = (1 + 2/3) / 2.
  EXPECT_NEAR(c[1].points[0].map, (1.0 + 2.0 / 3) / 2, 1e-12);
  EXPECT_EQ(c[1].points[0].top1, 1.0);
}

TEST(BackfillCurve, EndpointsAreTheSameForEveryMergeAndOrder) {
  const CurveData d = clustered(120, 6, 10, 5);
  std::vector<int64_t> id(120), rev(120);
  for (int64_t i = 0; i < 120; ++i) id[i] = i, rev[i] = 119 - i;
  const Calibration cn{8, 1, 1, 1}, co{5, -2, 1, 1};
  std::vector<CurveSpec> specs{{"id", id, Merge::kRaw, cn, co},
                               {"rev", rev, Merge::kRank, cn, co},
                               {"id", id, Merge::kCalibrated, cn, co}};
  const auto c = backfill_curves(d, specs, {0, 1}, 1);
  for (size_t s = 1; s < specs.size(); ++s) {
    EXPECT_NEAR(c[s].points[0].map, c[0].points[0].map, 1e-6);
    EXPECT_NEAR(c[s].points[1].map, c[0].points[1].map, 1e-6);
  }
  EXPECT_NE(c[0].points[0].map, c[0].points[1].map);
}

// Raw and calibrated keys are carried from one state to the next (only the items
// backfilled in between change); every state must equal the same state scored alone,
// whose keys are built from scratch. Fractions out of order take the start-over path.
TEST(BackfillCurve, StatesScoredTogetherEqualEachScoredAlone) {
  const int64_t n = 150;
  const CurveData d = clustered(n, 6, 10, 9);
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = (i * 37) % n;  // a permutation (gcd(37, 150) = 1)
  const Calibration cn{8, 1, 1, 1}, co{5, -2, 1, 1};
  const std::vector<CurveSpec> specs{{"o", order, Merge::kRaw, cn, co}, {"o", order, Merge::kCalibrated, cn, co}};
  const std::vector<double> fractions{0.1, 0.3, 0.3, 0.7, 0.2, 0.9, 1};
  const auto together = backfill_curves(d, specs, fractions, 1);
  for (size_t f = 0; f < fractions.size(); ++f) {
    const auto alone = backfill_curves(d, specs, {fractions[f]}, 1);
    for (size_t s = 0; s < specs.size(); ++s) {
      EXPECT_EQ(together[s].points[f].map, alone[s].points[0].map) << "spec " << s << " f = " << fractions[f];
      EXPECT_EQ(together[s].points[f].top1, alone[s].points[0].top1) << "spec " << s << " f = " << fractions[f];
    }
  }
  // The states differ: the test scores different galleries, not one gallery seven times.
  EXPECT_NE(together[1].points[0].map, together[1].points[5].map);
}

TEST(ScoreCalibration, BinnedFitRecoversTheLogisticItWasDrawnFrom) {
  // Counts exactly proportional to σ(a s + b) and 1 − σ: the weighted maximum-likelihood
  // fit is a s + b + log(T_imp / T_gen) (equal total weight per class of pair), up to
  // the fit's 1e-6 ridge.
  const double a = 12, b = -6;
  const int nb = 8192;
  std::vector<double> gen(nb, 0), imp(nb, 0);
  double tg = 0, ti = 0;
  for (int i = 0; i < nb; ++i) {
    const double s = -1 + (i + 0.5) * 2.0 / nb;
    if (s < -0.2 || s > 0.9) continue;
    const double p = 1 / (1 + std::exp(-(a * s + b)));
    gen[i] = 1000 * p;
    imp[i] = 1000 * (1 - p);
    tg += gen[i];
    ti += imp[i];
  }
  const Calibration c = fit_calibration_binned(gen, imp);
  EXPECT_NEAR(c.a, a, 1e-2);
  EXPECT_NEAR(c.b, b + std::log(ti / tg), 1e-2);
  EXPECT_THROW(fit_calibration_binned(std::vector<double>(nb, 0), imp), dualtune::Error);
}

TEST(ScoreCalibration, PairsCountEveryOrderedPairOfDistinctLabelledItems) {
  // 4 items, labels 0 0 1 -1: genuine ordered pairs (0,1), (1,0); impostors (0,2), (1,2),
  // (2,0), (2,1); item 3 (junk) takes part in none.
  const float x[8] = {1, 0, 0.9f, 0.1f, 0, 1, 1, 1};
  const int64_t labels[4] = {0, 0, 1, -1};
  const Calibration c = fit_calibration_pairs(4, 2, x, 2, x, labels);
  EXPECT_EQ(c.genuine, 2);
  EXPECT_EQ(c.impostor, 4);
  EXPECT_GT(c.a, 0);
}

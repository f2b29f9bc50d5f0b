// Task and compatibility losses against values computed by hand from their formulas.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "dualtune/losses/compat/bct.h"
#include "dualtune/losses/compat/contrastive.h"
#include "dualtune/losses/compat/l2.h"
#include "dualtune/losses/compat/mutual.h"
#include "dualtune/losses/compat/prototype.h"
#include "dualtune/losses/cross_entropy.h"
#include "dualtune/losses/margin_softmax.h"
#include "dualtune/losses/triplet.h"

using namespace dualtune;
namespace compat = dualtune::losses::compat;

namespace {
torch::Tensor t2(std::vector<float> v, int64_t r, int64_t c) { return torch::tensor(v).reshape({r, c}); }
torch::Tensor labels(std::vector<int64_t> v) { return torch::tensor(v, torch::kInt64); }
}  // namespace

TEST(LabelSmoothingCrossEntropy, MatchesHandComputedValue) {
  // z = [0, ln2, 0] -> softmax = [1/4, 1/2, 1/4], y = 1.
  // nll = ln 2; uniform term = -(1/3)(ln 1/4 + ln 1/2 + ln 1/4) = (5/3) ln 2
  // eps = 0.1: L = 0.9 ln2 + 0.1 (5/3) ln2 = (16/15) ln 2
  const auto z = t2({0.f, std::log(2.f), 0.f}, 1, 3);
  EXPECT_NEAR(losses::label_smoothing_cross_entropy(z, labels({1}), 0.1).item<double>(), 16.0 / 15.0 * std::log(2.0),
              1e-6);
  EXPECT_NEAR(losses::label_smoothing_cross_entropy(z, labels({1}), 0.0).item<double>(), std::log(2.0), 1e-6);
}

TEST(CosFace, SubtractsMarginFromTargetCosine) {
  // cos = [0.5, 0], y = 0, s = 2, m = 0.25: logits = [2(0.5 - 0.25), 0] = [0.5, 0]
  // L = log(1 + e^-0.5) = 0.474077
  EXPECT_NEAR(losses::cosface_loss(t2({0.5f, 0.f}, 1, 2), labels({0}), 2.0, 0.25).item<double>(),
              std::log(1 + std::exp(-0.5)), 1e-6);
}

TEST(ArcFace, AddsAngularMarginToTarget) {
  // cos = [0.5, 0] -> θ_y = 60°, m = 30° -> cos 90° = 0: logits [0, 0] -> L = ln 2
  EXPECT_NEAR(losses::arcface_loss(t2({0.5f, 0.f}, 1, 2), labels({0}), 4.0, M_PI / 6).item<double>(), std::log(2.0),
              1e-5);
}

TEST(BatchHardTriplet, MatchesHandComputedValue) {
  // 1-D points a=0,b=3 (class 0), c=1,d=5 (class 1), margin 0.5:
  // a: 3-1+.5=2.5  b: 3-2+.5=1.5  c: 4-1+.5=3.5  d: 4-2+.5=2.5  -> mean 2.5
  const auto e = t2({0, 0, 3, 0, 1, 0, 5, 0}, 4, 2);
  EXPECT_NEAR(losses::batch_hard_triplet_loss(e, labels({0, 0, 1, 1}), 0.5).item<double>(), 2.5, 1e-5);
}

TEST(PrototypeTriplet, SoftmaxWeightsOverNegatives) {
  // en = (0,0); P0 = (3,4) d=5, P1 = (0,1) d=1, P2 = (0,2) d=2; m = 0.3.
  // y = 0: w ∝ (e^-1, e^-2) = (0.731059, 0.268941); Σ w d = 1.268941 -> L = 5 - 1.268941 + 0.3 = 4.031059
  // y = 1: w ∝ (e^-5, e^-2) = (0.047426, 0.952574); Σ w d = 2.142278 -> L = max(0, 1 - 2.142278 + 0.3) = 0
  const auto en = t2({0, 0}, 1, 2);
  const auto p = t2({3, 4, 0, 1, 0, 2}, 3, 2);
  EXPECT_NEAR(compat::prototype_triplet_loss(en, p, labels({0}), 0.3).item<double>(), 4.031059, 1e-5);
  EXPECT_NEAR(compat::prototype_triplet_loss(en, p, labels({1}), 0.3).item<double>(), 0.0, 1e-6);
  // Both samples together: the mean.
  EXPECT_NEAR(compat::prototype_triplet_loss(t2({0, 0, 0, 0}, 2, 2), p, labels({0, 1}), 0.3).item<double>(),
              4.031059 / 2, 1e-5);
}

TEST(PrototypeSpacing, MeanDistanceToTheNearestOtherPrototype) {
  // P0 = (0,0), P1 = (3,4), P2 = (0,1): nearest 1 (P2), √18 = 4.242641 (P2), 1 (P0) -> mean 2.080880.
  const auto p = t2({0, 0, 3, 4, 0, 1}, 3, 2);
  EXPECT_NEAR(compat::prototype_spacing(p, 2), (2.0 + std::sqrt(18.0)) / 3, 1e-6);
  // First component only: (0), (3), (0) -> nearest 0, 3, 0 -> mean 1.
  EXPECT_NEAR(compat::prototype_spacing(p, 1), 1.0, 1e-9);
  // It scales with the old space, and in its units the term is scale-free: 10 × (en, P) gives
  // the same loss, where in absolute units the margin and softmin temperature do not scale.
  const auto en = t2({0.5f, 0.2f}, 1, 2);
  EXPECT_NEAR(compat::prototype_spacing(10 * p, 2), 10 * (2.0 + std::sqrt(18.0)) / 3, 1e-5);
  for (int64_t y : {0, 1, 2}) {
    const double unit = compat::prototype_spacing(p, 2);
    const double l1 = compat::prototype_triplet_loss(en, p, labels({y}), 0.3, unit).item<double>();
    const double l10 = compat::prototype_triplet_loss(10 * en, 10 * p, labels({y}), 0.3, 10 * unit).item<double>();
    EXPECT_NEAR(l10, l1, 1e-5) << y;
  }
  // By hand, en = (0,0), y = 1, in units of u = 2: d = (0, 5, 1) / 2 = (0, 2.5, 0.5),
  // w ∝ (e^0, e^-0.5) over P0, P2 = (0.622459, 0.377541), Σ w d = 0.188771 -> L = 2.5 − 0.188771 + 0.3 = 2.611229.
  EXPECT_NEAR(compat::prototype_triplet_loss(t2({0, 0}, 1, 2), p, labels({1}), 0.3, 2.0).item<double>(), 2.611229,
              1e-5);
  // More rows than one block of 1,024: x_i = i² on a line, nearest 1 for i = 0 and 2i − 1 for
  // i ≥ 1, so the mean over n = 1,100 is (1 + 1099²) / 1100.
  const auto x = torch::arange(1100, torch::kFloat64).pow(2).unsqueeze(1);
  EXPECT_NEAR(compat::prototype_spacing(x, 1), (1.0 + 1099.0 * 1099.0) / 1100.0, 1e-3);
  EXPECT_THROW(compat::prototype_spacing(t2({1, 2}, 1, 2), 2), std::exception);
}

TEST(PrototypeSoftmax, ScaledCosineCrossEntropy) {
  // en = (1,0); cos to P = (1, 0, -1); s = 2 -> logits (2, 0, -2); y = 0:
  // L = log(1 + e^-2 + e^-4) = 0.142932
  const auto p = t2({5, 0, 0, 3, -2, 0}, 3, 2);
  EXPECT_NEAR(compat::prototype_softmax_loss(t2({1, 0}, 1, 2), p, labels({0}), 2.0).item<double>(),
              std::log(1 + std::exp(-2.0) + std::exp(-4.0)), 1e-6);
}

TEST(PrototypeRegression, SquaredDistanceOfDirectionsToTheClassPrototype) {
  // P = (5,0), (0,3), (-2,0). Sample 1: en = (2,2), y = 1: cos 1/√2 -> 2 − √2.
  // Sample 2: en = (0,-1), y = 2: cos 0 -> 2. Sample 3: en = (7,0), y = 0: 0.
  // mean = (4 − √2) / 3; the scale of en and of P does not matter.
  const auto p = t2({5, 0, 0, 3, -2, 0}, 3, 2);
  const auto en = t2({2, 2, 0, -1, 7, 0}, 3, 2).requires_grad_();
  const auto loss = compat::prototype_regression_loss(en, p, labels({1, 2, 0}));
  EXPECT_NEAR(loss.item<double>(), (4 - std::sqrt(2.0)) / 3, 1e-6);
  loss.backward();
  // d/den of (2 − 2 cos(en, p))/3 at en = (7,0), p ∥ en: zero; at (0,-1) against (−1,0):
  // −(2/3) (p̂ − cos · ên)/|en| = −(2/3)(−1, 0) = (2/3, 0).
  EXPECT_NEAR(en.grad()[2].abs().sum().item<double>(), 0.0, 1e-6);
  EXPECT_NEAR(en.grad()[1][0].item<double>(), 2.0 / 3.0, 1e-6);
  EXPECT_NEAR(en.grad()[1][1].item<double>(), 0.0, 1e-6);
  EXPECT_NEAR(compat::prototype_regression_loss(10 * en.detach(), 0.1 * p, labels({1, 2, 0})).item<double>(),
              (4 - std::sqrt(2.0)) / 3, 1e-6);
}

TEST(L2Compat, NormalisedSquaredDistance) {
  // sample 1: (1,0) vs (0,1) -> 2;  sample 2: (2,0) vs (5,0) -> normalised equal -> 0. mean 1.
  EXPECT_NEAR(compat::l2_loss(t2({1, 0, 2, 0}, 2, 2), t2({0, 1, 5, 0}, 2, 2)).item<double>(), 1.0, 1e-6);
}

TEST(DimensionMismatch, ComparesFirstMinComponentsBothWays) {
  // Dn = 3 > Do = 2: en = (2, 0, 5) cropped to (2, 0) == eo direction (1, 0) -> 0.
  EXPECT_NEAR(compat::l2_loss(t2({2, 0, 5}, 1, 3), t2({1, 0}, 1, 2)).item<double>(), 0.0, 1e-6);
  // Dn = 2 < Do = 3: eo = (1, 0, 7) cropped to (1, 0).
  EXPECT_NEAR(compat::l2_loss(t2({3, 0}, 1, 2), t2({1, 0, 7}, 1, 3)).item<double>(), 0.0, 1e-6);
  // Prototypes of size 2 against a 3-D embedding: the third component is ignored.
  const auto p = t2({3, 4, 0, 1, 0, 2}, 3, 2);
  EXPECT_NEAR(compat::prototype_triplet_loss(t2({0, 0, 100}, 1, 3), p, labels({0}), 0.3).item<double>(), 4.031059,
              1e-5);
  // o2n: old 2-D embeddings are zero-padded to the new width.
  const auto padded = compat::to_new_width(t2({1, 2}, 1, 2), 4);
  EXPECT_TRUE(torch::equal(padded, t2({1, 2, 0, 0}, 1, 4)));
}

TEST(BctExtendedClassifier, SynthesizedRowsRescaledToMeanLearnedNorm) {
  // Wo rows (1,0), (0,2): mean norm 1.5. New classes a, b, c; old knows b (0) and a (1).
  // Unknown c has prototype (3,4) (norm 5) -> rescaled (3,4)/5*1.5 = (0.9, 1.2).
  models::ClassHead wo;
  wo.weight = t2({1, 0, 0, 2}, 2, 2);
  const auto protos = t2({9, 9, 9, 9, 3, 4}, 3, 2);
  const std::vector<int64_t> n2o{1, 0, -1};
  const auto ext = compat::extend_old_classifier(wo, protos, n2o, true);
  EXPECT_EQ(ext.synthesized, 1);
  EXPECT_NEAR(ext.learned_row_norm, 1.5, 1e-6);
  EXPECT_TRUE(torch::allclose(ext.head.weight, t2({1, 0, 0, 2, 0.9f, 1.2f}, 3, 2)));
  EXPECT_EQ(ext.target, (std::vector<int64_t>{1, 0, 2}));
  const auto unscaled = compat::extend_old_classifier(wo, protos, n2o, false);
  EXPECT_TRUE(torch::allclose(unscaled.head.weight, t2({1, 0, 0, 2, 3, 4}, 3, 2)));
  // BCT loss of en = (1, 0), class a (row 1 = (0,2)): logits (1, 0, 0.9) -> CE at index 1.
  const double expected = -std::log(std::exp(0.0) / (std::exp(1.0) + std::exp(0.0) + std::exp(0.9)));
  EXPECT_NEAR(compat::bct_loss(t2({1, 0}, 1, 2), labels({0}), ext).item<double>(), expected, 1e-5);
}

TEST(N2oLoss, OnlySamplesKnownToTheOldModel) {
  // Old head rows (1,0), (0,1); sample 0 maps to old label 0, sample 1 is unknown (-1).
  // Only sample 0 counts: logits (1, 0) -> CE = log(1 + e^-1).
  models::ClassHead wo;
  wo.weight = t2({1, 0, 0, 1}, 2, 2);
  EXPECT_NEAR(compat::n2o_loss(t2({1, 0, 0, 9}, 2, 2), wo, labels({0, -1})).item<double>(), std::log(1 + std::exp(-1.0)),
              1e-6);
  // No known sample: zero loss.
  EXPECT_EQ(compat::n2o_loss(t2({1, 0}, 1, 2), wo, labels({-1})).item<double>(), 0.0);
}

TEST(CrossModelContrastive, OwnOldEmbeddingAgainstOtherClasses) {
  // τ = 1, labels (0, 0, 1); en x0 = (1,0), x1 = (0,1), x2 = (1,0); eo o0 = o1 = (1,0), o2 = (0,1).
  // Old negatives only (same-class j ≠ i is in no sum):
  //   row 0: pos c(x0,o0) = 1, neg c(x0,o2) = 0            -> log(1 + e^-1)
  //   row 1: pos c(x1,o1) = 0, neg c(x1,o2) = 1            -> log(1 + e)
  //   row 2: pos c(x2,o2) = 0, negs c(x2,o0) = c(x2,o1) = 1 -> log(1 + 2e)
  const double e = std::exp(1.0);
  const auto en = t2({1, 0, 0, 1, 1, 0}, 3, 2);
  const auto eo = t2({1, 0, 1, 0, 0, 1}, 3, 2);
  const auto y = labels({0, 0, 1});
  EXPECT_NEAR(compat::cross_model_contrastive_loss(en, eo, y, 1.0, false).item<double>(),
              (std::log(1 + 1 / e) + std::log(1 + e) + std::log(1 + 2 * e)) / 3, 1e-5);
  // With the new embeddings of other classes as negatives too:
  //   row 0: + c(x0,x2) = 1 -> log(2 + e^-1); row 1: + c(x1,x2) = 0 -> log(2 + e);
  //   row 2: + c(x2,x0) = 1, c(x2,x1) = 0 -> log(2 + 3e)
  EXPECT_NEAR(compat::cross_model_contrastive_loss(en, eo, y, 1.0, true).item<double>(),
              (std::log(2 + 1 / e) + std::log(2 + e) + std::log(2 + 3 * e)) / 3, 1e-5);
  // Cosines of unnormalised inputs, τ = 0.5: x0 = 3·(1,0), x1 = (0,2); o0 = (.6,.8), o1 = (0,5).
  //   row 0: pos .6/.5 = 1.2, neg 0 -> log(1 + e^-1.2); row 1: pos 2, neg .8/.5 = 1.6 -> log(1 + e^-0.4)
  EXPECT_NEAR(compat::cross_model_contrastive_loss(t2({3, 0, 0, 2}, 2, 2), t2({.6f, .8f, 0, 5}, 2, 2), labels({0, 1}),
                                                   0.5, false)
                  .item<double>(),
              (std::log(1 + std::exp(-1.2)) + std::log(1 + std::exp(-0.4))) / 2, 1e-5);
}

// Ranking metrics (AP, CMC, mINP) and TAR@FAR on hand-computed cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "dualtune/eval/evaluate.h"
#include "dualtune/eval/ranking.h"
#include "dualtune/eval/tar_far.h"

using namespace dualtune::eval;
using dualtune::features::FeatureSet;

namespace {
constexpr Role P = Role::kPositive, N = Role::kNegative, X = Role::kExcluded;

std::vector<int64_t> ranks_of(const std::vector<float>& s, const std::vector<Role>& r) {
  RankScratch scratch;
  std::vector<int64_t> ranks;
  positive_ranks(static_cast<int64_t>(s.size()), s.data(), r.data(), scratch, ranks);
  return ranks;
}
}  // namespace

TEST(PositiveRanks, TiesOrderedByGalleryIndex) {
  // j:      0    1    2    3    4
  // score: 0.9  0.5  0.7  0.5  0.1
  // role:   N    P    N    P    P
  // order (score desc, index asc): 0(N) 2(N) 1(P) 3(P) 4(P) -> positive ranks 3, 4, 5
  // AP = (1/3)(1/3 + 2/4 + 3/5) = 0.47777..., INP = 3/5 = 0.6, first rank 3
  const auto r = ranks_of({0.9f, 0.5f, 0.7f, 0.5f, 0.1f}, {N, P, N, P, P});
  EXPECT_EQ(r, (std::vector<int64_t>{3, 4, 5}));
  EXPECT_DOUBLE_EQ(average_precision(r), (1.0 / 3 + 2.0 / 4 + 3.0 / 5) / 3);
  EXPECT_DOUBLE_EQ(inverse_negative_penalty(r), 0.6);
}

TEST(PositiveRanks, TieBetweenPositiveAndNegativeUsesIndex) {
  // score: 0.5  0.5  0.8  0.5  0.2 ; role: N P P N N
  // order: 2(P,0.8) 0(N,0.5) 1(P,0.5) 3(N,0.5) 4(N) -> ranks 1, 3
  // (negative 0 ties with positive 1 and has the lower index: ranked before it;
  //  negative 3 ties too but has a higher index: ranked after it)
  // AP = (1/2)(1/1 + 2/3) = 0.8333..., INP = 2/3
  const auto r = ranks_of({0.5f, 0.5f, 0.8f, 0.5f, 0.2f}, {N, P, P, N, N});
  EXPECT_EQ(r, (std::vector<int64_t>{1, 3}));
  EXPECT_DOUBLE_EQ(average_precision(r), (1.0 + 2.0 / 3) / 2);
  EXPECT_DOUBLE_EQ(inverse_negative_penalty(r), 2.0 / 3);
}

TEST(PositiveRanks, ExcludedItemsDoNotCountAndNoPositiveGivesEmpty) {
  // excluded item 0 has the top score but is not in the ranking: positive 2 is rank 1
  EXPECT_EQ(ranks_of({0.9f, 0.1f, 0.5f}, {X, N, P}), (std::vector<int64_t>{1}));
  EXPECT_TRUE(ranks_of({0.9f, 0.1f, 0.5f}, {N, N, X}).empty());
}

namespace {
// 2-D unit features make the cosines exact: (1,0)·(0,1) = 0, (1,0)·(1,0) = 1.
FeatureSet set2d(std::vector<float> f, std::vector<int64_t> labels, std::vector<int64_t> cams) {
  FeatureSet s;
  s.n = static_cast<int64_t>(labels.size());
  s.d = 2;
  s.features = std::move(f);
  s.labels = std::move(labels);
  s.cams = std::move(cams);
  return s;
}
}  // namespace

TEST(MeanAveragePrecision, FiveItemGalleryWithTiesAndAQueryWithoutPositive) {
  // gallery  feature      label cam
  //   g0     (1, 0)        A=0   1
  //   g1     (0, 1)        B=1   1
  //   g2     (1, 0)        B=1   2
  //   g3     (0.6, 0.8)    A=0   2
  //   g4     (-1, 0)       A=0   2
  // q0 (1,0) A cam 1: scores g0 1, g1 0, g2 1, g3 0.6, g4 -1. g0 is same id + same cam:
  //   excluded. order g2(N) g3(P) g1(N) g4(P): ranks 2, 4 -> AP = (1/2 + 2/4)/2 = 0.5,
  //   INP = 2/4 = 0.5, first rank 2.
  // q1 (0,1) B cam 1: scores g0 0, g1 1, g2 0, g3 0.8, g4 0. g1 excluded (same id + cam).
  //   order g3(N, 0.8), then the tie at 0 by index: g0(N) g2(P) g4(N): rank 3 ->
  //   AP = 1/3, INP = 1/3, first rank 3.
  // q2 (1,0) label C=2: no C in the gallery -> skipped. q3 label -1 -> skipped.
  // mAP = (0.5 + 1/3)/2 = 5/12, mINP = 5/12, CMC: rank1 0, rank2 0.5, rank>=3 1.
  const FeatureSet gallery =
      set2d({1, 0, 0, 1, 1, 0, 0.6f, 0.8f, -1, 0}, {0, 1, 1, 0, 0}, {1, 1, 2, 2, 2});
  const FeatureSet query = set2d({1, 0, 0, 1, 1, 0, 1, 0}, {0, 1, 2, -1}, {1, 1, 1, 1});
  EvalOptions opt;
  opt.protocol = "reid";
  const Metrics m = evaluate_case(query, gallery, opt);
  EXPECT_EQ(m.queries, 2);
  EXPECT_EQ(m.skipped, 2);
  EXPECT_NEAR(m.map, 5.0 / 12, 1e-12);
  EXPECT_NEAR(m.minp, 5.0 / 12, 1e-12);
  ASSERT_EQ(m.cmc.size(), 50u);
  EXPECT_DOUBLE_EQ(m.cmc[0], 0.0);
  EXPECT_DOUBLE_EQ(m.cmc[1], 0.5);
  EXPECT_DOUBLE_EQ(m.cmc[2], 1.0);
  EXPECT_DOUBLE_EQ(m.cmc[49], 1.0);
  EXPECT_DOUBLE_EQ(m.rank1, 0.0);
  EXPECT_DOUBLE_EQ(m.rank5, 1.0);
  EXPECT_DOUBLE_EQ(m.rank10, 1.0);
}

TEST(TarAtFar, SmallScoreList) {
  // impostors (10): 0.9 0.8 0.7 0.6 0.5 0.4 0.3 0.2 0.1 0.0; genuine (5): 0.95 0.85 0.75 0.65 0.3
  // FAR 0.05: k = floor(0.5)+1 = 1 -> t = 0.9; FAR(t) = 0/10; TAR = #{g > 0.9} = 1/5 = 0.2
  // FAR 0.1 : k = floor(1.0)+1 = 2 -> t = 0.8; FAR(t) = 1/10 <= 0.1; TAR = 2/5 = 0.4
  // FAR 0.25: k = floor(2.5)+1 = 3 -> t = 0.7; FAR(t) = 2/10; TAR = 3/5 = 0.6
  TarFarAccumulator acc(impostors_to_keep(0.25, 10));
  for (float s : {0.9f, 0.8f, 0.7f, 0.6f, 0.5f, 0.4f, 0.3f, 0.2f, 0.1f, 0.0f}) acc.add_impostor(s);
  for (float s : {0.95f, 0.85f, 0.75f, 0.65f, 0.3f}) acc.add_genuine(s);
  EXPECT_EQ(impostors_to_keep(0.25, 10), 3);
  EXPECT_FLOAT_EQ(acc.threshold_at_far(0.05), 0.9f);
  EXPECT_DOUBLE_EQ(acc.tar_at_far(0.05), 0.2);
  EXPECT_DOUBLE_EQ(acc.tar_at_far(0.1), 0.4);
  EXPECT_DOUBLE_EQ(acc.tar_at_far(0.25), 0.6);
  EXPECT_TRUE(std::isnan(TarFarAccumulator(1).tar_at_far(0.1)));  // no pairs: n/a
}

TEST(TarAtFar, StreamedAndMergedEqualsSortingEverything) {
  // Enough scores to prune many times, split over 3 accumulators as threads would.
  std::mt19937 rng(7);
  std::normal_distribution<float> imp(0.f, 0.2f), gen(0.5f, 0.2f);
  std::vector<float> impostors(200000), genuine(5000);
  for (auto& s : impostors) s = imp(rng);
  for (auto& s : genuine) s = gen(rng);
  const int64_t keep = impostors_to_keep(1e-2, static_cast<int64_t>(impostors.size()));
  std::vector<TarFarAccumulator> acc(3, TarFarAccumulator(keep));
  for (size_t i = 0; i < impostors.size(); ++i) acc[i % 3].add_impostor(impostors[i]);
  for (size_t i = 0; i < genuine.size(); ++i) acc[i % 3].add_genuine(genuine[i]);
  acc[0].merge(acc[1]);
  acc[0].merge(acc[2]);
  std::vector<float> sorted = impostors;
  std::sort(sorted.begin(), sorted.end(), std::greater<float>());
  for (double far : kFarTargets) {
    const int64_t k = static_cast<int64_t>(std::floor(far * sorted.size())) + 1;
    const float t = sorted[k - 1];
    const double tar = double(std::count_if(genuine.begin(), genuine.end(), [&](float s) { return s > t; })) /
                       genuine.size();
    EXPECT_FLOAT_EQ(acc[0].threshold_at_far(far), t) << far;
    EXPECT_DOUBLE_EQ(acc[0].tar_at_far(far), tar) << far;
  }
}

// positive_ranks against the definition, counted by brute force: rank of positive j =
// 1 + #{valid k ranked before j}. Scores drawn from few values (many ties, across
// bucket edges), the full cosine range, just outside it, and a dense cluster near 1
// (many positives in one bucket).
TEST(PositiveRanks, MatchesBruteForceOnRandomScoresWithTies) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    const int64_t ng = 1 + static_cast<int64_t>(rng() % 400);
    std::vector<float> s(static_cast<size_t>(ng));
    std::vector<Role> r(static_cast<size_t>(ng));
    const int kind = trial % 4;
    std::uniform_real_distribution<float> u(-1.f, 1.f), near1(0.999f, 1.f);
    for (int64_t j = 0; j < ng; ++j) {
      if (kind == 0) s[j] = static_cast<float>(static_cast<int>(rng() % 9) - 4) / 4.f;  // ties on 9 values
      if (kind == 1) s[j] = u(rng);
      if (kind == 2) s[j] = (rng() % 2 ? 1.f : -1.f) * (1.f + static_cast<float>(rng() % 3) * 1e-6f);  // at and past ±1
      if (kind == 3) s[j] = near1(rng);
      const auto v = rng() % 10;
      r[j] = v < 3 ? P : (v < 9 ? N : X);
    }
    std::vector<int64_t> expected;
    for (int64_t j = 0; j < ng; ++j) {
      if (r[j] != P) continue;
      int64_t rank = 1;
      for (int64_t k = 0; k < ng; ++k)
        if (k != j && r[k] != X && (s[k] > s[j] || (s[k] == s[j] && k < j))) ++rank;
      expected.push_back(rank);
    }
    std::sort(expected.begin(), expected.end());
    ASSERT_EQ(ranks_of(s, r), expected) << "trial " << trial << " kind " << kind;
  }
}

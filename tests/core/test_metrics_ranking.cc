// Ranking metrics (AP, CMC, mINP) and TAR@FAR on hand-computed cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
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

namespace {

// The exact computation by brute force: sort every impostor score, t = the k-th largest,
// TAR = #{genuine > t} / #genuine.
struct BruteTar {
  double tar[3], threshold[3];
};
BruteTar brute_tar_far(std::vector<float> impostors, const std::vector<float>& genuine) {
  std::sort(impostors.begin(), impostors.end(), std::greater<float>());
  BruteTar b{};
  for (int f = 0; f < 3; ++f) {
    const size_t k = static_cast<size_t>(std::floor(kFarTargets[f] * double(impostors.size()))) + 1;
    const float t = impostors[k - 1];
    b.threshold[f] = t;
    b.tar[f] = double(std::count_if(genuine.begin(), genuine.end(), [&](float s) { return s > t; })) /
               double(genuine.size());
  }
  return b;
}

// Counts (imp, gen) into `threads` counters with `windows`, merged, then the extra passes
// evaluate_case runs when a threshold falls outside the windows.
TarFarResult counted_tar_far(const std::vector<float>& imp, const std::vector<float>& gen, const TarFarWindows& windows,
                             int threads, int* extra_passes = nullptr) {
  auto pass = [&](const TarFarWindows& w) {
    std::vector<TarFarCounter> c;
    for (int t = 0; t < threads; ++t) c.emplace_back(w);
    for (size_t i = 0; i < imp.size(); ++i) c[i % threads].add(imp[i], false);
    for (size_t i = 0; i < gen.size(); ++i) c[i % threads].add(gen[i], true);
    for (int t = 1; t < threads; ++t) c[0].merge(c[static_cast<size_t>(t)]);
    return std::move(c[0]);
  };
  return resolve_tar_far(pass(windows), pass, extra_passes);
}

}  // namespace

TEST(TarAtFar, ScoreKeysPreserveOrder) {
  const std::vector<float> v{-INFINITY, -1.f, -0.5f, -1e-30f, -0.f, 0.f, 1e-30f, 0.25f, 0.5f, 1.f, INFINITY};
  for (size_t i = 0; i + 1 < v.size(); ++i) {
    if (v[i] == v[i + 1]) {
      EXPECT_EQ(score_key(v[i]), score_key(v[i + 1])) << v[i];  // -0 and +0
    } else {
      EXPECT_LT(score_key(v[i]), score_key(v[i + 1])) << v[i] << " < " << v[i + 1];
    }
    EXPECT_EQ(key_score(score_key(v[i])), v[i]);
  }
  EXPECT_LT(score_key(NAN), score_key(-INFINITY));
}

TEST(TarAtFar, SmallScoreList) {
  // impostors (1000): 0.9 0.8 0.7 0.6 and 996 × 0.0; genuine (5): 0.95 0.85 0.75 0.65 0.3
  // FAR 1e-4: k = floor(0.1)+1 = 1 -> t = 0.9; TAR = #{g > 0.9} = 1/5 = 0.2
  // FAR 1e-3: k = floor(1.0)+1 = 2 -> t = 0.8; FAR(t) = 1/1000; TAR = 2/5 = 0.4
  // FAR 1e-2: k = floor(10)+1 = 11 -> t = 0.0 (ties: 996 impostors); TAR = 5/5 = 1
  std::vector<float> imp{0.9f, 0.8f, 0.7f, 0.6f};
  imp.resize(1000, 0.0f);
  const std::vector<float> gen{0.95f, 0.85f, 0.75f, 0.65f, 0.3f};
  EXPECT_EQ(far_threshold_rank(1e-2, 1000), 11);
  int extra = 0;
  const TarFarResult r = counted_tar_far(imp, gen, {}, 1, &extra);  // a survey, then the thresholds' bins
  EXPECT_EQ(extra, 1);
  EXPECT_FLOAT_EQ(r.threshold[0], 0.9f);
  EXPECT_FLOAT_EQ(r.threshold[1], 0.8f);
  EXPECT_FLOAT_EQ(r.threshold[2], 0.0f);
  EXPECT_DOUBLE_EQ(r.tar[0], 0.2);
  EXPECT_DOUBLE_EQ(r.tar[1], 0.4);
  EXPECT_DOUBLE_EQ(r.tar[2], 1.0);
  const TarFarResult none = TarFarCounter().resolve();  // no pairs: n/a
  EXPECT_TRUE(std::isnan(none.tar[0]) && std::isnan(none.threshold[0]) && none.resolved[0]);
}

// The counting computation against sorting everything, on scores with many ties (few
// distinct values), with ±0, and continuous ones; windows predicted from a sample (as
// evaluate_case does), windows everywhere but on the thresholds (second pass), and
// none; split over threads and merged.
TEST(TarAtFar, CountingEqualsSortingEverythingWithTies) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 12; ++trial) {
    const int kind = trial % 3;
    std::normal_distribution<float> imp_d(0.f, 0.2f), gen_d(0.5f, 0.2f);
    auto draw = [&](std::normal_distribution<float>& d) {
      const float v = d(rng);
      if (kind == 0) return std::round(v * 16.f) / 16.f;  // 33-ish distinct values: ties everywhere
      if (kind == 1) return std::round(v * 2048.f) / 2048.f * ((rng() % 2) ? 1.f : -1.f);  // ±0 and ties
      return v;
    };
    std::vector<float> imp(150000 + rng() % 50000), gen(4000 + rng() % 2000);
    for (auto& s : imp) s = draw(imp_d);
    for (auto& s : gen) s = draw(gen_d);
    const BruteTar want = brute_tar_far(imp, gen);

    TarFarCounter sample;
    for (size_t i = 0; i < imp.size(); i += 50) sample.add(imp[i], false);
    const TarFarWindows predicted = sample.predict_windows(8);
    TarFarWindows wrong;  // windows just past every threshold's bin
    for (int f = 0; f < 3; ++f) wrong.first[f] = (score_key(want.threshold[f]) >> 16) + 1, wrong.count[f] = 4;
    const TarFarWindows variants[3] = {predicted, wrong, TarFarWindows{}};
    for (int v = 0; v < 3; ++v) {
      int extra = 0;
      const TarFarResult got = counted_tar_far(imp, gen, variants[v], 1 + trial % 3, &extra);
      for (int f = 0; f < 3; ++f) {
        EXPECT_EQ(got.threshold[f], want.threshold[f]) << "trial " << trial << " variant " << v << " FAR " << kFarTargets[f];
        EXPECT_EQ(got.tar[f], want.tar[f]) << "trial " << trial << " variant " << v << " FAR " << kFarTargets[f];
      }
      if (v == 1) EXPECT_EQ(extra, 2) << "trial " << trial;  // survey + the thresholds' bins
      if (v == 2) EXPECT_EQ(extra, 1) << "trial " << trial;  // the first pass was the survey
    }
  }
}

// add_row (the evaluation's path: pairs counted from the roles, scores scanned eight at a
// time for one inside a window) counts what add does, pair by pair, and skips excluded
// items. 3003 items: a tail shorter than a group; some scores NaN (an impostor or genuine
// pair that no window holds).
TEST(TarAtFar, RowsCountLikePairs) {
  std::mt19937 rng(11);
  std::normal_distribution<float> d(0.2f, 0.3f);
  const int64_t ng = 3003;
  TarFarCounter survey_pairs, survey_rows;
  TarFarCounter sample;
  std::vector<std::vector<float>> rows(40, std::vector<float>(ng));
  std::vector<std::vector<Role>> roles(40, std::vector<Role>(ng));
  for (size_t q = 0; q < rows.size(); ++q) {
    for (int64_t j = 0; j < ng; ++j) {
      rows[q][j] = rng() % 500 == 0 ? NAN : std::round(d(rng) * 512.f) / 512.f;
      const auto v = rng() % 10;
      roles[q][j] = v < 2 ? P : (v < 9 ? N : X);
      if (roles[q][j] != X) sample.add(rows[q][j], roles[q][j] == P);
    }
  }
  const TarFarWindows w = sample.predict_windows(8);
  TarFarCounter pairs(w), by_rows(w);
  for (size_t q = 0; q < rows.size(); ++q) {
    by_rows.add_row(ng, rows[q].data(), roles[q].data());
    for (int64_t j = 0; j < ng; ++j)
      if (roles[q][j] != X) pairs.add(rows[q][j], roles[q][j] == P);
  }
  EXPECT_EQ(by_rows.num_impostors(), pairs.num_impostors());
  EXPECT_EQ(by_rows.num_genuine(), pairs.num_genuine());
  const TarFarResult a = pairs.resolve(), b = by_rows.resolve();
  for (int f = 0; f < 3; ++f) {
    ASSERT_TRUE(a.resolved[f]) << f;  // the windows came from these very pairs
    EXPECT_EQ(b.resolved[f], a.resolved[f]);
    EXPECT_EQ(b.threshold[f], a.threshold[f]);
    EXPECT_EQ(b.tar[f], a.tar[f]);
  }
}

// add_row against add, pair by pair, on rows of scores drawn from `palette` and windows
// of 2 coarse bins from `first_bin`: the windows must resolve every threshold.
void expect_rows_count_like_pairs(uint32_t first_bin, const std::vector<float>& palette) {
  std::mt19937 rng(5);
  const int64_t ng = 1001;
  TarFarWindows w;
  for (int t = 0; t < 3; ++t) {
    w.first[t] = first_bin;
    w.count[t] = 2;
  }
  TarFarCounter pairs(w), by_rows(w);
  std::vector<float> row(ng);
  std::vector<Role> roles(ng);
  for (int q = 0; q < 5; ++q) {
    for (int64_t j = 0; j < ng; ++j) {
      row[j] = palette[rng() % palette.size()];
      const auto v = rng() % 10;
      roles[j] = v < 2 ? P : (v < 9 ? N : X);
      if (roles[j] != X) pairs.add(row[j], roles[j] == P);
    }
    by_rows.add_row(ng, row.data(), roles.data());
  }
  EXPECT_EQ(by_rows.num_impostors(), pairs.num_impostors());
  const TarFarResult a = pairs.resolve(), b = by_rows.resolve();
  for (int f = 0; f < 3; ++f) {
    ASSERT_TRUE(a.resolved[f]) << f;
    EXPECT_TRUE(b.resolved[f]) << f;
    if (!(std::isnan(a.threshold[f]) && std::isnan(b.threshold[f])))  // NaN: key 0's score
      EXPECT_EQ(b.threshold[f], a.threshold[f]);
    EXPECT_EQ(b.tar[f], a.tar[f]);
  }
}

// Windows at the bottom of the key range, where key_score gives NaN bit patterns: -inf
// and -FLT_MAX scores are still counted in them.
TEST(TarAtFar, RowsCountLikePairsAtTheBottomOfTheKeyRange) {
  const uint32_t bin = score_key(-INFINITY) >> 16;  // the coarse bin just under -FLT_MAX's
  ASSERT_TRUE(std::isnan(key_score(bin << 16)));
  expect_rows_count_like_pairs(bin, {-INFINITY, -FLT_MAX, std::nextafter(-FLT_MAX, 0.f)});
}

// Windows at the top of the key range (FLT_MAX's bin and +inf's): their end lies past
// +inf's key, where key_score gives NaN, so no score counts as above them; +inf and
// FLT_MAX are counted in them, 0.5 below.
TEST(TarAtFar, RowsCountLikePairsAtTheTopOfTheKeyRange) {
  const uint32_t bin = score_key(FLT_MAX) >> 16;
  ASSERT_EQ(bin + 1, score_key(INFINITY) >> 16);
  ASSERT_TRUE(std::isnan(key_score((bin + 2) << 16)));
  expect_rows_count_like_pairs(bin, {INFINITY, FLT_MAX, std::nextafter(FLT_MAX, 0.f), 0.5f});
}

// Windows from key 0 hold NaN scores (key 0), which no score comparison finds.
TEST(TarAtFar, RowsCountLikePairsWithAWindowFromKeyZero) {
  expect_rows_count_like_pairs(0, {NAN});  // every threshold is NaN's key
}

// A score exactly on the lowest key of the windows is counted in them.
TEST(TarAtFar, RowsCountLikePairsOnTheWindowsLowestKey) {
  const uint32_t bin = score_key(0.5f) >> 16;
  ASSERT_EQ(score_key(0.5f), bin << 16);  // 0.5 is that key
  std::vector<float> palette(50, -0.3f);  // 2 % of the pairs on 0.5: every threshold is 0.5
  palette[0] = 0.5f;
  expect_rows_count_like_pairs(bin, palette);
}

// Windows from a sample surveyed in parts: each part's impostors all score one value,
// so each part puts every threshold in that value's bin, and the whole sample (equal
// parts, FAR <= 1 %: the k-th largest lies among the highest part's) in the highest bin.
TEST(TarAtFar, WindowsFromPartsSpanWhereThePartsDisagree) {
  const uint32_t b = score_key(0.3f) >> 16;
  auto part_at = [](uint32_t bin) {
    TarFarCounter part;
    const float s = key_score((bin << 16) + 100);  // inside the bin
    for (int i = 0; i < 1000; ++i) part.add(s, false);
    part.add(s, true);
    return part;
  };
  auto parts_at = [&](std::vector<uint32_t> bins) {
    std::vector<TarFarCounter> parts;
    for (uint32_t bin : bins) parts.push_back(part_at(bin));
    return parts;
  };
  // Agreeing parts: min_bins around the sample's bin, as the whole sample's own windows.
  const TarFarWindows same = predict_windows(parts_at({b, b, b, b}), 4, 16);
  for (int f = 0; f < 3; ++f) {
    EXPECT_EQ(same.first[f], b - 2) << f;
    EXPECT_EQ(same.count[f], 4u) << f;
  }
  // Disagreeing parts (bins b .. b + 6): one more bin on either side, b − 1 .. b + 7 (9).
  const TarFarWindows spread = predict_windows(parts_at({b + 6, b, b + 2, b + 3}), 4, 16);
  for (int f = 0; f < 3; ++f) {
    EXPECT_EQ(spread.first[f], b - 1) << f;
    EXPECT_EQ(spread.count[f], 9u) << f;
  }
  // Nearly agreeing parts (b, b + 1: b − 1 .. b + 2): min_bins placed to hold them all.
  const TarFarWindows near = predict_windows(parts_at({b + 1, b, b, b + 1}), 4, 16);
  for (int f = 0; f < 3; ++f) {
    EXPECT_EQ(near.first[f], b - 1) << f;
    EXPECT_EQ(near.count[f], 4u) << f;
  }
  // Wider than max_bins: max_bins, moved up to hold the whole sample's bin (b + 40).
  const TarFarWindows capped = predict_windows(parts_at({b, b + 40, b, b}), 4, 16);
  for (int f = 0; f < 3; ++f) {
    EXPECT_EQ(capped.first[f], b + 40 - 15) << f;
    EXPECT_EQ(capped.count[f], 16u) << f;
  }
  // Wider than max_bins with the sample's bin low in it (b − 1 .. b + 1, max 2): max_bins
  // from the lowest.
  const TarFarWindows low = predict_windows(parts_at({b, b, b, b}), 4, 2);
  for (int f = 0; f < 3; ++f) {
    EXPECT_EQ(low.first[f], b - 1) << f;
    EXPECT_EQ(low.count[f], 2u) << f;
  }
}

// positive_ranks against the definition, counted by brute force: rank of positive j =
// 1 + #{valid k ranked before j}. Scores drawn from few values (many ties, across
// bucket edges), the full cosine range, just outside it, a dense cluster near 1 (many
// positives in one bucket), and the ranges of merged keys (logits, rank keys, a range
// that is not finite: the buckets follow the scores' own range).
TEST(PositiveRanks, MatchesBruteForceOnRandomScoresWithTies) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 350; ++trial) {
    // Small galleries, then larger ones with few positives (the bucket table then has
    // many more buckets than positives and most negatives are only counted).
    const bool large = trial >= 300;
    const int64_t ng = large ? 2000 + static_cast<int64_t>(rng() % 4000) : 1 + static_cast<int64_t>(rng() % 400);
    std::vector<float> s(static_cast<size_t>(ng));
    std::vector<Role> r(static_cast<size_t>(ng));
    const int kind = trial % 7;
    std::uniform_real_distribution<float> u(-1.f, 1.f), near1(0.999f, 1.f), logit(-40.f, 12.f), rank_key(0.f, 1.f);
    for (int64_t j = 0; j < ng; ++j) {
      if (kind == 0) s[j] = static_cast<float>(static_cast<int>(rng() % 9) - 4) / 4.f;  // ties on 9 values
      if (kind == 1) s[j] = u(rng);
      if (kind == 2) s[j] = (rng() % 2 ? 1.f : -1.f) * (1.f + static_cast<float>(rng() % 3) * 1e-6f);  // at and past ±1
      if (kind == 3) s[j] = near1(rng);
      if (kind == 4) s[j] = logit(rng);     // merged keys: calibrated logits, far outside [-1, 1]
      if (kind == 5) s[j] = rank_key(rng);  // rank-merge keys in (0, 1)
      if (kind == 6) s[j] = j % 5 == 0 ? std::numeric_limits<float>::infinity() : u(rng) * 1e6f;  // not finite
      const auto v = rng() % 100;
      r[j] = v < (large ? 3 : 30) ? P : (v < 90 ? N : X);
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

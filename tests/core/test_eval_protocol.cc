// Protocols (leave-one-out, ReID exclusion), dimension mismatch, blockwise evaluation
// and agreement with a brute-force reference.
#include <cblas.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "dualtune/eval/evaluate.h"
#include "dualtune/eval/protocol.h"
#include "dualtune/eval/search.h"
#include "dualtune/eval/similarity.h"
#include "dualtune/eval/tar_far.h"
#include "dualtune/util/error.h"

using namespace dualtune::eval;
using dualtune::features::FeatureSet;

namespace {

FeatureSet make_set(int64_t d, std::vector<float> f, std::vector<int64_t> labels, std::vector<int64_t> cams = {}) {
  FeatureSet s;
  s.n = static_cast<int64_t>(labels.size());
  s.d = d;
  s.features = std::move(f);
  s.labels = std::move(labels);
  s.cams = cams.empty() ? std::vector<int64_t>(s.labels.size(), -1) : std::move(cams);
  return s;
}

/// n items in `classes` clusters, d dims, with noise: features of a typical model.
FeatureSet clustered(int64_t n, int64_t d, int classes, float noise, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> centers(static_cast<size_t>(classes * d));
  for (auto& c : centers) c = g(rng);
  FeatureSet s;
  s.n = n;
  s.d = d;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = static_cast<int64_t>(rng() % classes);
    s.labels.push_back(c);
    s.cams.push_back(static_cast<int64_t>(rng() % 3));
    for (int64_t k = 0; k < d; ++k) s.features.push_back(centers[c * d + k] + noise * g(rng));
  }
  return s;
}

void expect_same(const Metrics& a, const Metrics& b) {
  EXPECT_EQ(a.map, b.map);
  EXPECT_EQ(a.minp, b.minp);
  EXPECT_EQ(a.cmc, b.cmc);
  EXPECT_EQ(a.queries, b.queries);
  EXPECT_EQ(a.skipped, b.skipped);
  for (int f = 0; f < 3; ++f) EXPECT_EQ(a.tar_at_far[f], b.tar_at_far[f]) << f;
}

}  // namespace

TEST(LeaveOneOut, ExcludesSelf) {
  // items: x0 (1,0) A, x1 (0,1) A, x2 (1,0) B
  // q0: gallery {x1 (score 0, P), x2 (score 1, N)} -> rank 2 -> AP 1/2. (With itself in
  //     the gallery x0 would score 1 and rank first: AP would differ.)
  // q1: gallery {x0 (0, P), x2 (0, N)}: tie, x0 has the lower index -> rank 1 -> AP 1
  // q2: label B has no other item -> skipped.   mAP = 3/4, 2 queries, 1 skipped
  const FeatureSet s = make_set(2, {1, 0, 0, 1, 1, 0}, {0, 0, 1});
  const Metrics m = evaluate_case(s, s, EvalOptions{});
  EXPECT_DOUBLE_EQ(m.map, 0.75);
  EXPECT_DOUBLE_EQ(m.rank1, 0.5);
  EXPECT_EQ(m.queries, 2);
  EXPECT_EQ(m.skipped, 1);
}

TEST(LeaveOneOut, RejectsMisalignedSets) {
  const FeatureSet a = make_set(2, {1, 0, 0, 1}, {0, 1});
  const FeatureSet b = make_set(2, {1, 0, 0, 1}, {1, 0});
  EXPECT_THROW(evaluate_case(a, b, EvalOptions{}), dualtune::Error);
}

TEST(ReidProtocol, ExcludesSameIdSameCamAndJunk) {
  // query label 5 cam 1. gallery: [5 cam 1] excluded, [5 cam 2] positive,
  // [-1 cam 2] junk excluded, [7 cam 1] negative
  const int64_t gl[4] = {5, 5, -1, 7}, gc[4] = {1, 2, 2, 1};
  Role roles[4];
  gallery_roles(Protocol::kReid, 0, 5, 1, 4, gl, gc, roles);
  EXPECT_EQ(roles[0], Role::kExcluded);
  EXPECT_EQ(roles[1], Role::kPositive);
  EXPECT_EQ(roles[2], Role::kExcluded);
  EXPECT_EQ(roles[3], Role::kNegative);

  // Same gallery as features: g0 (1,0), g1 (0,1), g2 (1,0), g3 (0.6,0.8); query (1,0).
  // scores 1, 0, 1, 0.6. Without exclusions g0 (same id, rank 1) would give AP 1.
  // With them: g3 (N, 0.6) ranks before g1 (P, 0) -> rank 2 -> AP 1/2.
  const FeatureSet gallery = make_set(2, {1, 0, 0, 1, 1, 0, 0.6f, 0.8f}, {5, 5, -1, 7}, {1, 2, 2, 1});
  const FeatureSet query = make_set(2, {1, 0}, {5}, {1});
  EvalOptions opt;
  opt.protocol = "reid";
  EXPECT_DOUBLE_EQ(evaluate_case(query, gallery, opt).map, 0.5);
  // A query labelled -1 is skipped.
  const FeatureSet junk_query = make_set(2, {1, 0}, {-1}, {1});
  const Metrics m = evaluate_case(junk_query, gallery, opt);
  EXPECT_EQ(m.queries, 0);
  EXPECT_EQ(m.skipped, 1);
  EXPECT_THROW(parse_protocol("market"), dualtune::Error);
}

TEST(DimensionMismatch, UsesFirstMinDComponentsThenNormalises) {
  // loo over 3 items, labels A A B; query model d = 2, gallery model d = 3.
  // queries: q0 (1,0), q1 (0,1), q2 (0,1)
  // gallery: g0 (1,0,0), g1 (0.6,0.8,0), g2 (0.5,0.1,10)
  // First 2 components, then normalised: g2 -> (0.5,0.1)/0.5099 = (0.981, 0.196).
  //   q0: g1 (P) 0.6 < g2 (N) 0.981 -> rank 2 -> AP 1/2
  //   q1: g0 (P) 0 < g2 (N) 0.196 -> rank 2 -> AP 1/2
  //   q2: label B alone -> skipped.                   mAP = 1/2
  // Using the 3rd component (normalising g2 over all 3: (0.05, 0.01, 0.999)) would put
  // g2 at 0.05 < 0.6 for q0 -> AP 1 -> mAP 3/4.
  const FeatureSet q = make_set(2, {1, 0, 0, 1, 0, 1}, {0, 0, 1});
  const FeatureSet g = make_set(3, {1, 0, 0, 0.6f, 0.8f, 0, 0.5f, 0.1f, 10}, {0, 0, 1});
  const Metrics m = evaluate_case(q, g, EvalOptions{});
  EXPECT_DOUBLE_EQ(m.map, 0.5);
  EXPECT_EQ(m.queries, 2);
  // The same holds with the roles swapped (query d = 3 truncated to 2).
  EXPECT_DOUBLE_EQ(evaluate_case(g, q, EvalOptions{}).queries, 2);
}

TEST(Blockwise, EqualsSingleBlock) {
  const FeatureSet s = clustered(300, 16, 5, 1.5f, 1);
  EvalOptions one;
  one.max_block_bytes = int64_t(1) << 30;
  EvalOptions rows1 = one, rows7 = one;
  rows1.max_block_bytes = 1;            // one query row per block
  rows7.max_block_bytes = 7 * 300 * 4;  // 7 rows, last block partial
  EXPECT_EQ(query_block_rows(300, rows7.max_block_bytes), 7);
  const Metrics a = evaluate_case(s, s, one);
  expect_same(a, evaluate_case(s, s, rows1));
  expect_same(a, evaluate_case(s, s, rows7));
  EvalOptions threads1 = rows7;
  threads1.threads = 1;
  expect_same(a, evaluate_case(s, s, threads1));
}

// With 2 OpenMP threads each block's GEMM is split by gallery columns over them, OpenBLAS
// set to one thread meanwhile: every score is the dot product it must be, and OpenBLAS'
// thread count is what it was after the call, also when the callback throws.
TEST(Blockwise, SplitGemmScoresEveryPairAndRestoresBlasThreads) {
  const int64_t nq = 37, ng = 101, d = 24;
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  std::vector<float> q(nq * d), g(ng * d);
  for (float& x : q) x = nd(rng);
  for (float& x : g) x = nd(rng);
  set_num_threads(2);
  std::vector<float> S(nq * ng, NAN);
  for_each_similarity_block(nq, q.data(), ng, g.data(), d, 10 * ng * 4, [&](int64_t q0, int64_t rows, const float* b) {
    std::copy_n(b, rows * ng, S.data() + q0 * ng);
  });
  for (int64_t i = 0; i < nq; ++i) {
    for (int64_t j = 0; j < ng; ++j) {
      double dot = 0;
      for (int64_t k = 0; k < d; ++k) dot += double(q[i * d + k]) * g[j * d + k];
      ASSERT_NEAR(S[i * ng + j], dot, 1e-4) << i << ", " << j;
    }
  }
  EXPECT_EQ(openblas_get_num_threads(), 2);
  EXPECT_THROW(for_each_similarity_block(nq, q.data(), ng, g.data(), d, 1,
                                         [](int64_t, int64_t, const float*) { DT_THROW("stop"); }),
               dualtune::Error);
  EXPECT_EQ(openblas_get_num_threads(), 2);
  set_num_threads(0);
}

TEST(Evaluate, MatchesBruteForceReference) {
  // Reference: full similarity matrix, full stable sort per query, AP from the sorted
  // list; TAR from all impostor scores sorted.
  const FeatureSet q = clustered(120, 8, 6, 1.2f, 2);
  const FeatureSet g = clustered(200, 8, 6, 1.2f, 2);  // same centres (same seed)
  EvalOptions opt;
  opt.protocol = "reid";
  opt.max_block_bytes = 4096;
  const Metrics m = evaluate_case(q, g, opt);

  const auto qn = normalized_prefix(q.n, q.d, q.features.data(), q.d);
  const auto gn = normalized_prefix(g.n, g.d, g.features.data(), g.d);
  double ap_sum = 0;
  int64_t evaluated = 0, r1 = 0;
  std::vector<float> imp, gen;
  for (int64_t i = 0; i < q.n; ++i) {
    std::vector<std::pair<float, int64_t>> list;
    for (int64_t j = 0; j < g.n; ++j) {
      if (g.labels[j] == q.labels[i] && g.cams[j] == q.cams[i]) continue;
      float s = 0;
      for (int64_t k = 0; k < q.d; ++k) s += qn[i * q.d + k] * gn[j * g.d + k];
      list.emplace_back(s, j);
      (g.labels[j] == q.labels[i] ? gen : imp).push_back(s);
    }
    std::stable_sort(list.begin(), list.end(), [](auto& a, auto& b) { return a.first > b.first; });
    int64_t hits = 0;
    double ap = 0;
    for (size_t r = 0; r < list.size(); ++r) {
      if (g.labels[list[r].second] == q.labels[i]) ap += double(++hits) / double(r + 1);
    }
    if (hits == 0) continue;
    ++evaluated;
    ap_sum += ap / hits;
    r1 += g.labels[list[0].second] == q.labels[i];
  }
  EXPECT_EQ(m.queries, evaluated);
  EXPECT_NEAR(m.map, ap_sum / evaluated, 1e-6);  // sgemm vs scalar dot: last-bit differences
  EXPECT_NEAR(m.rank1, double(r1) / evaluated, 1e-12);
  std::sort(imp.begin(), imp.end(), std::greater<float>());
  const int64_t k = static_cast<int64_t>(std::floor(1e-2 * imp.size())) + 1;
  const double tar =
      double(std::count_if(gen.begin(), gen.end(), [&](float s) { return s > imp[k - 1]; })) / gen.size();
  EXPECT_NEAR(m.tar_at_far[2], tar, 2.0 / gen.size());
}

// TAR@FAR of evaluate_case against the exact computation by brute force over the same
// similarities (one block holding the whole matrix): every impostor score sorted, t the
// k-th largest, TAR = #{genuine > t} / #genuine. Features with entries in {-1, 0, 1}
// repeat, so many pairs tie exactly (and at the thresholds); the last set is one vector
// repeated (every score ties).
TEST(Evaluate, TarAtFarEqualsSortingAllScoresWithTies) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 3; ++trial) {
    const int64_t n = 700, d = 6;
    FeatureSet s;
    s.n = n;
    s.d = d;
    for (int64_t i = 0; i < n; ++i) {
      s.labels.push_back(static_cast<int64_t>(rng() % 5));
      s.cams.push_back(-1);
      for (int64_t k = 0; k < d; ++k)
        s.features.push_back(trial == 2 ? 1.f : static_cast<float>(static_cast<int>(rng() % 3) - 1));
    }
    EvalOptions opt;
    opt.max_block_bytes = 50 * n * 4;  // 50 query rows per block
    const Metrics m = evaluate_case(s, s, opt);

    const auto x = normalized_prefix(n, d, s.features.data(), d);
    std::vector<float> imp, gen;
    for_each_similarity_block(n, x.data(), n, x.data(), d, int64_t(1) << 30, [&](int64_t, int64_t rows, const float* S) {
      ASSERT_EQ(rows, n);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j)
          if (j != i) (s.labels[j] == s.labels[i] ? gen : imp).push_back(S[i * n + j]);
    });
    std::sort(imp.begin(), imp.end(), std::greater<float>());
    for (int f = 0; f < 3; ++f) {
      const auto k = static_cast<size_t>(std::floor(kFarTargets[f] * double(imp.size()))) + 1;
      const float t = imp[k - 1];
      const double tar = double(std::count_if(gen.begin(), gen.end(), [&](float v) { return v > t; })) / gen.size();
      EXPECT_EQ(m.tar_at_far[f], tar) << "trial " << trial << " FAR " << kFarTargets[f] << " t " << t;
    }
  }
}

TEST(SearchTopk, MatchesBlockwiseRanking) {
  // Exact FAISS top-k: first neighbour of each query equals the arg-max cosine.
  const FeatureSet s = clustered(50, 8, 4, 1.0f, 3);
  std::vector<float> scores;
  std::vector<int64_t> ids;
  search_topk(s.n, s.d, s.features.data(), s.n, s.d, s.features.data(), 3, scores, ids);
  ASSERT_EQ(ids.size(), 150u);
  for (int64_t i = 0; i < s.n; ++i) {
    EXPECT_EQ(ids[i * 3], i);  // a vector is its own nearest neighbour
    EXPECT_NEAR(scores[i * 3], 1.0f, 1e-5);
    EXPECT_GE(scores[i * 3 + 1], scores[i * 3 + 2]);
  }
}

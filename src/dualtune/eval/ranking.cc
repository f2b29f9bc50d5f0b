#include "dualtune/eval/ranking.h"

#include <algorithm>
#include <cmath>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "dualtune/util/error.h"

namespace dualtune::eval {
namespace {

/// Item (s_a, a) is ranked before item (s_b, b): score descending, then index ascending.
inline bool ranked_before(float sa, int64_t a, float sb, int64_t b) { return sa > sb || (sa == sb && a < b); }

/// Indices j with roles[j] == kPositive, ascending: sixteen roles compared at once, the
/// positions of the matches read off the comparison's bit mask.
void positive_indices(int64_t ng, const Role* roles, std::vector<uint32_t>& out) {
  static_assert(sizeof(Role) == 1, "roles are bytes");
  out.clear();
  int64_t j = 0;
#if defined(__SSE2__)
  const __m128i positive = _mm_set1_epi8(static_cast<char>(Role::kPositive));
  for (; j + 16 <= ng; j += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(roles + j));
    for (uint32_t mask = static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, positive))); mask;
         mask &= mask - 1)
      out.push_back(static_cast<uint32_t>(j + __builtin_ctz(mask)));
  }
#endif
  for (; j < ng; ++j)
    if (roles[j] == Role::kPositive) out.push_back(static_cast<uint32_t>(j));
}

/// Smallest and largest score, NaN ignored (both stay ±inf when every score is NaN).
void score_range(int64_t ng, const float* scores, float& lo, float& hi) {
  lo = INFINITY, hi = -INFINITY;
  int64_t k = 0;
#if defined(__SSE2__)
  // min_ps(v, m) is v < m ? v : m, the scalar rule below: a NaN v leaves m.
  __m128 lo4[2] = {_mm_set1_ps(INFINITY), _mm_set1_ps(INFINITY)};
  __m128 hi4[2] = {_mm_set1_ps(-INFINITY), _mm_set1_ps(-INFINITY)};
  for (; k + 8 <= ng; k += 8) {
    for (int h = 0; h < 2; ++h) {
      const __m128 v = _mm_loadu_ps(scores + k + 4 * h);
      lo4[h] = _mm_min_ps(v, lo4[h]);
      hi4[h] = _mm_max_ps(v, hi4[h]);
    }
  }
  alignas(16) float l[8], u[8];
  _mm_store_ps(l, lo4[0]), _mm_store_ps(l + 4, lo4[1]);
  _mm_store_ps(u, hi4[0]), _mm_store_ps(u + 4, hi4[1]);
  for (int i = 0; i < 8; ++i) {
    lo = l[i] < lo ? l[i] : lo;
    hi = u[i] > hi ? u[i] : hi;
  }
#endif
  for (; k < ng; ++k) {
    const float v = scores[k];
    lo = v < lo ? v : lo;  // NaN compares false: ignored
    hi = v > hi ? v : hi;
  }
}

}  // namespace

void positive_ranks(int64_t ng, const float* scores, const Role* roles, RankScratch& scratch,
                    std::vector<int64_t>& ranks) {
  ranks.clear();
  auto& pos_index = scratch.positive_index;
  positive_indices(ng, roles, pos_index);
  const size_t m = pos_index.size();
  if (m == 0) return;
  // Bucket index: weakly decreasing in the score (float rounding is monotone), so a
  // positive in a lower bucket than a negative scores strictly higher (ranked before
  // it) and one in a higher bucket strictly lower. A negative in a bucket without
  // positives therefore has exactly start[b] positives ranked before it (start[b] = the
  // positives in buckets < b) and is only counted; the few in a bucket holding
  // positives are compared with those positives.
  // The buckets split [lo, hi], the scores' own range: cosines, but also the merged
  // keys of a partly backfilled gallery (calibrated logits, rank keys in (0, 1)), which
  // would otherwise pile into the end buckets. A range that is not finite and positive
  // falls back to the cosine range [-1, 1]; scores outside the range clamp (NaN to
  // bucket 0). Many more buckets than positives keep the comparisons, and the positives
  // sharing a bucket, rare. Exactness does not depend on the range: any weakly
  // decreasing bucket index gives the same ranks.
  uint32_t nb = 64;
  while ((nb < 8 * m || nb < static_cast<uint64_t>(ng) / 8) && nb < (1u << 16)) nb *= 2;
  float lo, hi;
  score_range(ng, scores, lo, hi);
  float scale = static_cast<float>(nb) / (hi - lo);
  if (!(std::isfinite(lo) && std::isfinite(hi) && hi > lo && std::isfinite(scale) && scale > 0.0f))
    lo = -1.0f, hi = 1.0f, scale = static_cast<float>(nb) / 2.0f;
  const float top = static_cast<float>(nb) - 0.5f;
  auto bucket = [scale, top, hi](float v) -> uint32_t {
    float t = (hi - v) * scale;
    t = t > 0.0f ? t : 0.0f;
    t = t < top ? t : top;
    return static_cast<uint32_t>(static_cast<int32_t>(t));
  };
  // Every item's bucket, in a loop the compiler vectorises (nb <= 2^16: they fit 16 bits).
  auto& bk = scratch.buckets;
  bk.resize(static_cast<size_t>(ng));
  uint16_t* bkp = bk.data();
  for (int64_t k = 0; k < ng; ++k) bkp[k] = static_cast<uint16_t>(bucket(scores[k]));
  // key[b] = 2·start[b] + (bucket b holds a positive), b = 0..nb (key[nb] = 2m): one
  // load per item below says both where its negatives count and whether they must be
  // compared (at most 256 KiB; 32 KiB, L1, for the 8192 buckets of a thousand positives).
  // Built in place from the positives' count per bucket.
  DT_CHECK(m < (size_t(1) << 31), "positive_ranks: expected fewer than 2^31 positives per query, found ", m);
  auto& key = scratch.bucket_key;
  key.assign(nb + 1, 0);
  uint32_t* kp = key.data();
  for (const uint32_t j : pos_index) ++kp[bkp[j]];
  uint32_t run = 0;
  for (uint32_t b = 0; b <= nb; ++b) {
    const uint32_t c = kp[b];
    kp[b] = run << 1 | (c != 0);
    run += c;
  }
  // The positives by bucket (a counting sort: only their own buckets' cursors are
  // touched), then sorted within each bucket: score descending, index ascending.
  auto& pos = scratch.positives;
  pos.resize(m);
  {
    auto& fill = scratch.fill;
    fill.resize(nb);
    for (const uint32_t j : pos_index) fill[bkp[j]] = static_cast<uint32_t>(kp[bkp[j]] >> 1);
    for (const uint32_t j : pos_index) pos[fill[bkp[j]]++] = {scores[j], j};
  }
  const auto by_rank = [](const auto& x, const auto& y) { return ranked_before(x.first, x.second, y.first, y.second); };
  for (size_t i = 0; i < m;) {
    const uint32_t b = bkp[pos[i].second];
    const size_t end = kp[b + 1] >> 1;
    if (end - i > 1) std::sort(pos.begin() + static_cast<std::ptrdiff_t>(i), pos.begin() + static_cast<std::ptrdiff_t>(end), by_rank);
    i = end;
  }
  // before[p] = number of negatives with exactly p positives ranked before them. A
  // negative in a bucket without positives is counted at once; one in a bucket holding
  // positives is listed and placed among them below. Branch-free: which way a negative
  // goes is unpredictable where positives and negatives overlap.
  auto& before = scratch.before;
  before.assign(m + 1, 0);
  int64_t* bf = before.data();
  auto& mixed = scratch.mixed;
  mixed.resize(static_cast<size_t>(ng));
  uint32_t* mx = mixed.data();
  size_t n_mixed = 0;
  for (int64_t k = 0; k < ng; ++k) {
    const uint32_t kv = kp[bkp[k]];
    const uint32_t neg = roles[k] == Role::kNegative;
    const uint32_t shared = kv & 1;
    bf[kv >> 1] += neg & (shared ^ 1);
    mx[n_mixed] = static_cast<uint32_t>(k);
    n_mixed += neg & shared;
  }
  for (size_t i = 0; i < n_mixed; ++i) {
    const int64_t k = mx[i];
    const float s = scores[k];
    const uint32_t b = bkp[k];
    // Number of positives ranked before (s, k): lower bound within the bucket, branch-free.
    size_t lo = kp[b] >> 1, len = (kp[b + 1] >> 1) - lo;
    while (len > 0) {
      const size_t half = len / 2;
      const auto& p = pos[lo + half];
      const bool before_it = ranked_before(p.first, p.second, s, k);
      lo = before_it ? lo + half + 1 : lo;
      len = before_it ? len - half - 1 : half;
    }
    ++bf[lo];
  }
  ranks.resize(m);
  int64_t negatives_above = 0;
  for (size_t i = 0; i < m; ++i) {
    negatives_above += bf[i];
    ranks[i] = static_cast<int64_t>(i) + 1 + negatives_above;
  }
}

double average_precision(const std::vector<int64_t>& ranks) {
  DT_CHECK(!ranks.empty(), "average_precision: expected at least one positive, found none");
  double sum = 0;
  for (size_t i = 0; i < ranks.size(); ++i) sum += double(i + 1) / double(ranks[i]);
  return sum / double(ranks.size());
}

double inverse_negative_penalty(const std::vector<int64_t>& ranks) {
  DT_CHECK(!ranks.empty(), "inverse_negative_penalty: expected at least one positive, found none");
  return double(ranks.size()) / double(ranks.back());
}

}  // namespace dualtune::eval

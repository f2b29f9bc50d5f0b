#include "dualtune/eval/ranking.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "dualtune/util/error.h"

namespace dualtune::eval {
namespace {

/// Item (s_a, a) is ranked before item (s_b, b): score descending, then index ascending.
inline bool ranked_before(float sa, int64_t a, float sb, int64_t b) { return sa > sb || (sa == sb && a < b); }

/// Indices j with roles[j] == kPositive, ascending. Positives are few (one class among
/// many): eight roles are tested at once and only words holding a positive are looked into.
void positive_indices(int64_t ng, const Role* roles, std::vector<uint32_t>& out) {
  static_assert(sizeof(Role) == 1, "roles are bytes");
  out.clear();
  constexpr uint64_t kOnes = 0x0101010101010101ull, kHigh = 0x8080808080808080ull;
  const uint64_t pattern = kOnes * static_cast<uint8_t>(Role::kPositive);
  int64_t j = 0;
  for (; j + 8 <= ng; j += 8) {
    uint64_t w;
    std::memcpy(&w, roles + j, sizeof w);
    const uint64_t x = w ^ pattern;  // zero bytes where the role is positive
    if (((x - kOnes) & ~x & kHigh) == 0) continue;  // no zero byte: no positive among the eight
    for (int64_t b = j; b < j + 8; ++b)
      if (roles[b] == Role::kPositive) out.push_back(static_cast<uint32_t>(b));
  }
  for (; j < ng; ++j)
    if (roles[j] == Role::kPositive) out.push_back(static_cast<uint32_t>(j));
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
  // positives therefore has exactly start[b] positives ranked before it and is only
  // counted; the few in a bucket holding positives are compared with those positives.
  // The buckets split [lo, hi], the scores' own range: cosines, but also the merged
  // keys of a partly backfilled gallery (calibrated logits, rank keys in (0, 1)), which
  // would otherwise pile into the end buckets. A range that is not finite and positive
  // falls back to the cosine range [-1, 1]; scores outside the range clamp (NaN to
  // bucket 0). Many more buckets than positives keep the comparisons, and the positives
  // sharing a bucket, rare. Exactness does not depend on the range: any weakly
  // decreasing bucket index gives the same ranks.
  uint32_t nb = 64;
  while ((nb < 8 * m || nb < static_cast<uint64_t>(ng) / 8) && nb < (1u << 16)) nb *= 2;
  float lo = INFINITY, hi = -INFINITY;
  for (int64_t k = 0; k < ng; ++k) {
    const float v = scores[k];
    lo = v < lo ? v : lo;  // NaN compares false: ignored
    hi = v > hi ? v : hi;
  }
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
  // start[b] = number of positives in buckets < b, b = 0..nb (start[nb] = m). The
  // positives are sorted by a counting sort on the bucket, then within each bucket
  // (score descending, index ascending).
  auto& start = scratch.bucket_start;
  start.assign(nb + 1, 0);
  for (const uint32_t j : pos_index) ++start[bkp[j] + 1];
  for (uint32_t b = 0; b < nb; ++b) start[b + 1] += start[b];
  auto& pos = scratch.positives;
  pos.resize(m);
  {
    auto& fill = scratch.bucket_negatives;  // next free slot per bucket (reused below)
    fill.assign(start.begin(), start.end() - 1);
    for (const uint32_t j : pos_index) pos[fill[bkp[j]]++] = {scores[j], j};
  }
  const auto by_rank = [](const auto& x, const auto& y) { return ranked_before(x.first, x.second, y.first, y.second); };
  for (uint32_t b = 0; b < nb; ++b)
    if (start[b + 1] - start[b] > 1) std::sort(pos.begin() + start[b], pos.begin() + start[b + 1], by_rank);
  // Negatives are counted per bucket (those in buckets holding positives too: they are
  // not summed below) and the ones in buckets holding positives listed.
  auto& shared = scratch.shared;  // 1 where the bucket holds a positive
  shared.resize(nb);
  const uint32_t* st = start.data();
  for (uint32_t b = 0; b < nb; ++b) shared[b] = st[b] != st[b + 1];
  auto& cnt = scratch.bucket_negatives;
  cnt.assign(nb, 0);
  auto& mixed = scratch.mixed;  // negatives in buckets that hold positives
  mixed.resize(static_cast<size_t>(ng));
  size_t n_mixed = 0;
  const uint8_t* sh = shared.data();
  uint32_t* cn = cnt.data();
  for (int64_t k = 0; k < ng; ++k) {
    const uint32_t b = bkp[k];
    const uint32_t neg = roles[k] == Role::kNegative;
    // Branch-free: which way a negative goes is unpredictable where positives and
    // negatives overlap.
    cn[b] += neg;
    mixed[n_mixed] = static_cast<uint32_t>(k);
    n_mixed += neg & sh[b];
  }
  // before[p] = number of negatives with exactly p positives ranked before them.
  auto& before = scratch.before;
  before.assign(m + 1, 0);
  for (uint32_t b = 0; b < nb; ++b)
    if (!sh[b]) before[st[b]] += cn[b];
  for (size_t i = 0; i < n_mixed; ++i) {
    const int64_t k = mixed[i];
    const float s = scores[k];
    const uint32_t b = bkp[k];
    // Number of positives ranked before (s, k): lower bound within the bucket, branch-free.
    size_t lo = st[b], len = st[b + 1] - st[b];
    while (len > 0) {
      const size_t half = len / 2;
      const auto& p = pos[lo + half];
      const bool before_it = ranked_before(p.first, p.second, s, k);
      lo = before_it ? lo + half + 1 : lo;
      len = before_it ? len - half - 1 : half;
    }
    ++before[lo];
  }
  ranks.resize(m);
  int64_t negatives_above = 0;
  for (size_t i = 0; i < m; ++i) {
    negatives_above += before[i];
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

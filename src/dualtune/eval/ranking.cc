#include "dualtune/eval/ranking.h"

#include <algorithm>

#include "dualtune/util/error.h"

namespace dualtune::eval {
namespace {

/// Item (s_a, a) is ranked before item (s_b, b): score descending, then index ascending.
inline bool ranked_before(float sa, int64_t a, float sb, int64_t b) { return sa > sb || (sa == sb && a < b); }

}  // namespace

void positive_ranks(int64_t ng, const float* scores, const Role* roles, RankScratch& scratch,
                    std::vector<int64_t>& ranks) {
  auto& pos = scratch.positives;
  pos.clear();
  ranks.clear();
  for (int64_t j = 0; j < ng; ++j) {
    if (roles[j] == Role::kPositive) pos.emplace_back(scores[j], j);
  }
  if (pos.empty()) return;
  std::sort(pos.begin(), pos.end(),
            [](const auto& x, const auto& y) { return ranked_before(x.first, x.second, y.first, y.second); });
  const size_t m = pos.size();
  // before[p] = number of negatives with exactly p positives ranked before them.
  auto& before = scratch.before;
  before.assign(m, 0);
  const float last_s = pos.back().first;
  const int64_t last_j = pos.back().second;
  // Bucket index: weakly decreasing in the score (float rounding is monotone), so a
  // positive in a lower bucket than a negative scores strictly higher (ranked before
  // it) and one in a higher bucket strictly lower. Only the positives in the
  // negative's own bucket need comparing. Cosines lie in [-1, 1]; others clamp.
  size_t nb = 64;
  while (nb < 2 * m && nb < (size_t{1} << 16)) nb *= 2;
  const float scale = static_cast<float>(nb) / 2.0f;
  auto bucket = [&](float v) -> size_t {
    const float t = (1.0f - v) * scale;
    return t > 0.0f ? (t < static_cast<float>(nb) ? static_cast<size_t>(t) : nb - 1) : 0;
  };
  // start[b] = number of positives in buckets < b (the positives are sorted by score).
  auto& start = scratch.bucket_start;
  start.assign(nb + 1, 0);
  for (const auto& p : pos) ++start[bucket(p.first) + 1];
  for (size_t b = 0; b < nb; ++b) start[b + 1] += start[b];
  for (int64_t k = 0; k < ng; ++k) {
    if (roles[k] != Role::kNegative) continue;
    const float s = scores[k];
    if (!ranked_before(s, k, last_s, last_j)) continue;  // below every positive: no effect
    // Number of positives ranked before (s, k): lower bound within the bucket,
    // branch-free (the comparisons are unpredictable).
    const size_t b = bucket(s);
    size_t lo = start[b], len = start[b + 1] - start[b];
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

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
  for (int64_t k = 0; k < ng; ++k) {
    if (roles[k] != Role::kNegative) continue;
    const float s = scores[k];
    if (!ranked_before(s, k, last_s, last_j)) continue;  // below every positive: no effect
    // Number of positives ranked before (s, k): branch-free lower bound over the
    // sorted positives (the comparisons are unpredictable, so avoid branches).
    size_t lo = 0, len = m;
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

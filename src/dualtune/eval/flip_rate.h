#pragma once
// Flip rates: the regressions an upgrade causes, query by query (Yan et al.,
// "Positive-Congruent Training: Towards Regression-Free Model Updates", CVPR 2021).
// An average such as mAP can rise while queries that used to work break; users notice those.
//
// For each query, compare its top-1 before the upgrade (old/old: old query against the
// old gallery) with its top-1 after (a new query against the new gallery, the old
// gallery, or a mixed one):
//   negative flip: top-1 right before, wrong after      NFR = #negative flips / N
//   positive flip: top-1 wrong before, right after      PFR = #positive flips / N
// N = the queries evaluated in both cases: a query skipped in either (label −1, or no
// valid positive in its gallery) is left out of N and of both counts.
//
// Top-1 right means the query's first positive has rank 1, exactly as CMC rank-1 counts
// it (ranking.h): among the query's valid gallery items (the protocol's exclusions —
// self, same id + same camera, junk label −1 — never count), ordered by score
// descending and equal scores by gallery index ascending. So a positive tied with a
// negative at the top score is top-1 right iff its gallery index is the lower one. The
// outcomes are read from the same per-query first ranks that give CMC (evaluate_case),
// never from a second ranking, so for two cases evaluating the same queries
//   rank-1(after) − rank-1(before) = PFR − NFR   exactly.
#include <cstdint>
#include <vector>

namespace dualtune::eval {

/// Top-1 outcome of one query in one evaluation case.
enum class Top1 : int8_t {
  kSkipped = -1,  ///< not evaluated (label −1 or no valid positive)
  kWrong = 0,     ///< first positive at rank > 1
  kRight = 1,     ///< first positive at rank 1
};

/// Outcomes from per-query first-positive ranks (QueryResults::first_rank: 1-based,
/// 0 = skipped), in query order.
std::vector<Top1> top1_outcomes(const std::vector<int64_t>& first_rank);

struct FlipRates {
  double negative = 0;         ///< NFR, fraction in [0, 1]; NaN when queries == 0
  double positive = 0;         ///< PFR, fraction in [0, 1]; NaN when queries == 0
  int64_t negative_flips = 0;  ///< right before, wrong after
  int64_t positive_flips = 0;  ///< wrong before, right after
  int64_t queries = 0;         ///< N: evaluated in both cases
};

/// Flip rates from `before` (old/old) to `after` (an upgraded case); both in query
/// order over the same queries (same size, else dualtune::Error).
FlipRates flip_rates(const std::vector<Top1>& before, const std::vector<Top1>& after);

}  // namespace dualtune::eval

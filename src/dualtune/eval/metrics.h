#pragma once
// Retrieval and verification metrics of one evaluation case (one query set against
// one gallery). All rates are fractions in [0, 1] (reports print percentages).
#include <cstdint>
#include <vector>

namespace dualtune::eval {

/// CMC curve length kept for plots: ranks 1..kCmcRanks.
inline constexpr int kCmcRanks = 50;

struct Metrics {
  double map = 0;     ///< mean over evaluated queries of AP = (1/m) Σ_i i / r_i
  double minp = 0;    ///< mean of INP = m / r_m (r_m: rank of the hardest positive)
  double rank1 = 0, rank5 = 0, rank10 = 0;  ///< CMC at ranks 1, 5, 10
  std::vector<double> cmc;  ///< cmc[k-1] = fraction of queries whose first positive has rank <= k, k = 1..50
  double tar_at_far[3] = {0, 0, 0};  ///< TAR at FAR 1e-4, 1e-3, 1e-2 (NaN: no genuine/impostor pairs)
  int64_t queries = 0;  ///< queries evaluated (>= 1 positive in their gallery)
  int64_t skipped = 0;  ///< queries skipped: label -1 or no valid positive in the gallery
};

/// Per-query results in query order; reduced in order so the result does not depend
/// on the number of threads.
struct QueryResults {
  explicit QueryResults(int64_t nq) : ap(nq, 0), inp(nq, 0), first_rank(nq, 0) {}
  std::vector<double> ap, inp;
  std::vector<int64_t> first_rank;  ///< 0: query skipped
};

/// Means over the evaluated queries (first_rank > 0); TAR fields are left untouched.
Metrics reduce_query_results(const QueryResults& r);

}  // namespace dualtune::eval

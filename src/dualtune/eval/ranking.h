#pragma once
// Per-query ranking from the full ranking of the valid gallery, computed without a
// full sort: the rank of positive j is 1 + #{valid k ranked before j}.
//
// Tie rule (deterministic, "stable"): gallery items are ordered by score
// descending, and items with equal scores by gallery index ascending. So item k is
// ranked before item j iff s_k > s_j, or s_k == s_j and k < j.
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace dualtune::eval {

/// Role of one gallery item for one query, set by the protocol.
enum class Role : uint8_t {
  kExcluded,  ///< not in this query's gallery (self, same id + same cam, junk)
  kNegative,  ///< valid, different label
  kPositive,  ///< valid, same label
};

/// Reusable buffers (one per thread).
struct RankScratch {
  std::vector<std::pair<float, int64_t>> positives;
  std::vector<int64_t> before;
  std::vector<uint32_t> positive_index, fill, mixed;
  std::vector<uint32_t> bucket_key;  ///< per bucket: 2 · (positives in lower buckets) + (holds a positive)
  std::vector<uint16_t> buckets;     ///< per gallery item
};

/// 1-based ranks of the positives among the valid items, ascending.
/// @param ng      number of gallery items
/// @param scores  size ng
/// @param roles   size ng
/// @param ranks   output, size = number of positives (empty: the query has no positive)
/// Cost O(ng) in practice for m positives: the positives are spread over a table of
/// more than 8m score buckets (counting sort, then sorted within their bucket); a
/// negative in a bucket without positives is only counted in its bucket, one in a
/// bucket with positives is placed by binary search among them (worst case
/// O(ng log m + m log m), all scores in one bucket). Galleries up to 2^32 items, fewer than 2^31
/// positives per query.
void positive_ranks(int64_t ng, const float* scores, const Role* roles, RankScratch& scratch,
                    std::vector<int64_t>& ranks);

/// AP = (1/m) Σ_{i=1..m} i / r_i, with r_1 < ... < r_m the ranks of the m positives.
double average_precision(const std::vector<int64_t>& ranks);

/// INP = m / r_m (Ye et al., "Deep Learning for Person Re-identification: A Survey and
/// Outlook"): the fraction of the list up to the hardest positive that is positive.
double inverse_negative_penalty(const std::vector<int64_t>& ranks);

}  // namespace dualtune::eval

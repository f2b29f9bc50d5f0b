#pragma once
// Exact top-k cosine search with FAISS (IndexFlatIP on L2-normalised vectors), for
// uses that need only the first k neighbours (dumping neighbours, CMC at small k).
// Exact mAP needs the whole ranking: see evaluate_case (blockwise BLAS).
#include <cstdint>
#include <vector>

namespace dualtune::eval {

/// For each of nq queries, the k most similar gallery items, by score descending.
/// Uses the first min(dq, dg) components of both sides, L2-normalised.
/// @param q       nq query vectors of size dq, size nq*dq
/// @param g       ng gallery vectors of size dg, size ng*dg
/// @param scores  output, size nq*k (cosine similarities)
/// @param labels  output, size nq*k (gallery indices; -1 when ng < k)
void search_topk(int64_t nq, int64_t dq, const float* q, int64_t ng, int64_t dg, const float* g, int64_t k,
                 std::vector<float>& scores, std::vector<int64_t>& labels);

}  // namespace dualtune::eval

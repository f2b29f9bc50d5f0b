#include "dualtune/eval/search.h"

#include <faiss/IndexFlat.h>

#include <algorithm>

#include "dualtune/eval/similarity.h"
#include "dualtune/util/error.h"

namespace dualtune::eval {

void search_topk(int64_t nq, int64_t dq, const float* q, int64_t ng, int64_t dg, const float* g, int64_t k,
                 std::vector<float>& scores, std::vector<int64_t>& labels) {
  DT_CHECK(k > 0, "search_topk: expected k > 0, found ", k);
  DT_CHECK(dq > 0 && dg > 0, "search_topk: expected positive dimensions, found dq = ", dq, ", dg = ", dg);
  const int64_t d = std::min(dq, dg);
  const std::vector<float> qn = normalized_prefix(nq, dq, q, d);
  const std::vector<float> gn = normalized_prefix(ng, dg, g, d);
  faiss::IndexFlatIP index(static_cast<faiss::Index::idx_t>(d));
  index.add(static_cast<faiss::Index::idx_t>(ng), gn.data());
  scores.assign(static_cast<size_t>(nq * k), 0.f);
  std::vector<faiss::Index::idx_t> ids(static_cast<size_t>(nq * k));
  index.search(static_cast<faiss::Index::idx_t>(nq), qn.data(), static_cast<faiss::Index::idx_t>(k), scores.data(),
               ids.data());
  labels.assign(ids.begin(), ids.end());
}

}  // namespace dualtune::eval

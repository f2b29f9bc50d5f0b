#include "dualtune/eval/similarity.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "dualtune/util/error.h"

// OpenBLAS' own thread-count setter: weak, so that linking against another BLAS
// (netlib libblas, whose cblas.h is the same API) still works; then only OpenMP is set.
#pragma weak openblas_set_num_threads

namespace dualtune::eval {

std::vector<float> normalized_prefix(int64_t n, int64_t d, const float* x, int64_t d_out) {
  DT_CHECK(d_out > 0 && d_out <= d, "normalized_prefix: expected 0 < d_out <= d = ", d, ", found d_out = ", d_out);
  std::vector<float> out(static_cast<size_t>(n * d_out));
  for (int64_t i = 0; i < n; ++i) {
    const float* src = x + i * d;
    float* dst = out.data() + i * d_out;
    double sq = 0;
    for (int64_t k = 0; k < d_out; ++k) sq += double(src[k]) * src[k];
    const float inv = sq > 0 ? static_cast<float>(1.0 / std::sqrt(sq)) : 0.f;
    for (int64_t k = 0; k < d_out; ++k) dst[k] = src[k] * inv;
  }
  return out;
}

int64_t query_block_rows(int64_t ng, int64_t max_block_bytes) {
  const int64_t row_bytes = std::max<int64_t>(1, ng) * static_cast<int64_t>(sizeof(float));
  return std::max<int64_t>(1, max_block_bytes / row_bytes);
}

void for_each_similarity_block(int64_t nq, const float* q, int64_t ng, const float* g, int64_t d,
                               int64_t max_block_bytes, const SimilarityBlockFn& on_block) {
  DT_CHECK(d > 0, "similarity: expected dimension d > 0, found ", d);
  if (nq == 0) return;
  const int64_t block = std::min(nq, query_block_rows(ng, max_block_bytes));
  std::vector<float> S(static_cast<size_t>(block * std::max<int64_t>(ng, 1)));
  for (int64_t q0 = 0; q0 < nq; q0 += block) {
    const int64_t rows = std::min(block, nq - q0);
    if (ng > 0) {
      // S = Q_block (rows×d) · Gᵀ (d×ng)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(ng),
                  static_cast<int>(d), 1.0f, q + q0 * d, static_cast<int>(d), g, static_cast<int>(d), 0.0f, S.data(),
                  static_cast<int>(ng));
    }
    on_block(q0, rows, S.data());
  }
}

void set_num_threads(int threads) {
  const int n = threads > 0 ? threads : omp_get_num_procs();
  omp_set_num_threads(n);
  if (&openblas_set_num_threads != nullptr) openblas_set_num_threads(n);
}

}  // namespace dualtune::eval

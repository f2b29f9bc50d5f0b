#include "dualtune/eval/similarity.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <mutex>

#include "dualtune/util/error.h"

// OpenBLAS' own thread-count setter: weak, so that linking against another BLAS
// (netlib libblas, whose cblas.h is the same API) still works; then only OpenMP is set.
#pragma weak openblas_set_num_threads
#pragma weak openblas_get_num_threads
#pragma weak openblas_get_parallel

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

namespace {

// S[:, c0:c1] = Q (rows×d) · G[c0:c1]ᵀ, written with row stride ldc.
void sgemm_columns(int64_t rows, int64_t c0, int64_t c1, const float* q, const float* g, int64_t d, float* S,
                   int64_t ldc) {
  if (c1 <= c0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(c1 - c0),
              static_cast<int>(d), 1.0f, q, static_cast<int>(d), g + c0 * d, static_cast<int>(d), 0.0f, S + c0,
              static_cast<int>(ldc));
}

// OpenBLAS' pthreads build (openblas_get_parallel() == 1) runs its own worker pool,
// which spins for a while after every call. (The OpenMP build uses OpenMP's threads and
// runs single-threaded inside an OpenMP region by itself: nothing to do there.)
bool pthreads_openblas() {
  return &openblas_get_parallel != nullptr && &openblas_get_num_threads != nullptr &&
         &openblas_set_num_threads != nullptr && openblas_get_parallel() == 1;
}

// S (rows × ng) = Q · Gᵀ split by gallery columns over `nthreads` OpenMP threads, each
// a single-threaded sgemm. OpenBLAS' thread count is process-wide: it is set to 1 and
// restored under a mutex, so concurrent callers cannot leave it at 1, and it is restored
// before the caller's own work on the block (which may call BLAS itself).
void split_sgemm(int64_t rows, int64_t ng, const float* q, const float* g, int64_t d, float* S, int nthreads) {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  const int saved = openblas_get_num_threads();
  openblas_set_num_threads(1);
#pragma omp parallel num_threads(nthreads)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    sgemm_columns(rows, ng * t / nt, ng * (t + 1) / nt, q, g, d, S, ng);
  }
  openblas_set_num_threads(saved);
}

}  // namespace

void similarity_rows(int64_t rows, const float* q, int64_t ng, const float* g, int64_t d, float* S) {
  // With the pthreads OpenBLAS, the GEMM is split over the OpenMP threads (split_sgemm):
  // the callers rank each block in an OpenMP region, and OpenBLAS' own pool, spinning
  // after the GEMM, would take cores from it. Each score is the same dot product
  // whichever way it is split (up to its last bit).
  const int nthreads = omp_get_max_threads();
  if (nthreads > 1 && !omp_in_parallel() && pthreads_openblas()) {
    split_sgemm(rows, ng, q, g, d, S, nthreads);
  } else {
    sgemm_columns(rows, 0, ng, q, g, d, S, ng);
  }
}

void for_each_similarity_block(int64_t nq, const float* q, int64_t ng, const float* g, int64_t d,
                               int64_t max_block_bytes, const SimilarityBlockFn& on_block) {
  DT_CHECK(d > 0, "similarity: expected dimension d > 0, found ", d);
  if (nq == 0) return;
  const int64_t block = std::min(nq, query_block_rows(ng, max_block_bytes));
  std::vector<float> S(static_cast<size_t>(block * std::max<int64_t>(ng, 1)));
  for (int64_t q0 = 0; q0 < nq; q0 += block) {
    const int64_t rows = std::min(block, nq - q0);
    similarity_rows(rows, q + q0 * d, ng, g, d, S.data());
    on_block(q0, rows, S.data());
  }
}

void set_num_threads(int threads) {
  const int n = threads > 0 ? threads : omp_get_num_procs();
  omp_set_num_threads(n);
  if (&openblas_set_num_threads != nullptr) openblas_set_num_threads(n);
}

}  // namespace dualtune::eval

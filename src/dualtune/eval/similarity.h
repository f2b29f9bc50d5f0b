#pragma once
// Blockwise cosine similarity.
// Layout (FAISS convention, stated once): n vectors of size d are a compact
// row-major n×d float matrix. Similarities are inner products of L2-normalised
// vectors; a block of query rows × all gallery items is computed with one BLAS
// sgemm, so the full Q×G matrix is never held when it exceeds the byte budget.
#include <cstdint>
#include <functional>
#include <vector>

namespace dualtune::eval {

/// Copies the first d_out components of n vectors of size d (x: n*d) and L2-normalises
/// each copy; returns n*d_out floats. A zero vector stays zero (it scores 0 with all).
/// Requires 0 < d_out <= d. Used for dimension mismatch: old vs new compare min(Do, Dn).
std::vector<float> normalized_prefix(int64_t n, int64_t d, const float* x, int64_t d_out);

/// Query rows per block so that rows*ng floats fit in max_block_bytes; at least 1
/// (a single row larger than the budget is still computed).
int64_t query_block_rows(int64_t ng, int64_t max_block_bytes);

/// Called once per block: S is rows×ng row-major, S[r*ng + j] = <q[q0 + r], g[j]>.
using SimilarityBlockFn = std::function<void(int64_t q0, int64_t rows, const float* S)>;

/// S (rows × ng, row-major) = q · gᵀ for rows query vectors of size d (normalised):
/// the GEMM of one block, as for_each_similarity_block computes it.
void similarity_rows(int64_t rows, const float* q, int64_t ng, const float* g, int64_t d, float* S);

/// Computes q·gᵀ block by block, in increasing q0 order.
/// @param q  nq query vectors of size d (already normalised), size nq*d
/// @param g  ng gallery vectors of size d (already normalised), size ng*d
/// @param max_block_bytes  upper bound on the similarity block buffer
void for_each_similarity_block(int64_t nq, const float* q, int64_t ng, const float* g, int64_t d,
                               int64_t max_block_bytes, const SimilarityBlockFn& on_block);

/// Sets OpenMP and OpenBLAS thread counts; threads <= 0 means all cores.
void set_num_threads(int threads);

}  // namespace dualtune::eval

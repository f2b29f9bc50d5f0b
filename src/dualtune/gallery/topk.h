#pragma once
// Top-k selection with one tie rule everywhere in the gallery: a higher score first,
// equal scores by item id ascending (so results never depend on storage order or on
// the number of threads).
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace dualtune::gallery {

/// The k best (score, id) pairs pushed so far.
class TopK {
 public:
  explicit TopK(int64_t k) : k_(k) { heap_.reserve(static_cast<size_t>(k)); }
  /// Cheap pre-check for hot loops: false when (score, id) cannot enter.
  bool admits(float score, int64_t id) const {
    return static_cast<int64_t>(heap_.size()) < k_ || better(score, id, heap_.front().score, heap_.front().id);
  }
  void push(float score, int64_t id);
  /// Writes the k best, best first; missing entries get score -inf and id -1.
  void write(float* scores, int64_t* ids) const;
  /// Same, also writing a per-entry tag pushed with push_tagged (-1 for missing entries).
  void write_tagged(float* scores, int64_t* ids, int32_t* tags) const;
  void push_tagged(float score, int64_t id, int32_t tag);
  void clear() { heap_.clear(); }

  static bool better(float s1, int64_t id1, float s2, int64_t id2) { return s1 > s2 || (s1 == s2 && id1 < id2); }

 private:
  struct Entry {
    float score;
    int64_t id;
    int32_t tag;
  };
  int64_t k_;
  std::vector<Entry> heap_;  ///< the worst kept entry at the front
};

inline constexpr float kNoScore = -std::numeric_limits<float>::infinity();

/// Exact top-k by inner product, blockwise: one BLAS sgemm per block of queries × block of
/// rows, then a per-query top-k over the block (OpenMP over queries).
/// @param q       nq query vectors of size d, nq*d
/// @param x       nx rows of size d, nx*d
/// @param ids     nx item ids (what is reported)
/// @param mask    nx flags, rows with 0 are skipped; null = all rows
/// @param scores  output nq*k; @param out_ids output nq*k (-1 when fewer than k rows)
void exact_topk(int64_t nq, const float* q, int64_t nx, const float* x, const int64_t* ids, int64_t d, int64_t k,
                const uint8_t* mask, float* scores, int64_t* out_ids);

}  // namespace dualtune::gallery

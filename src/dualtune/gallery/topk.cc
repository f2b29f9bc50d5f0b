#include "dualtune/gallery/topk.h"

#include <cblas.h>
#include <faiss/utils/distances.h>

#include <algorithm>

#include "dualtune/util/error.h"

namespace dualtune::gallery {
namespace {
constexpr int64_t kBlasThreshold = 20;
}

void TopK::push(float score, int64_t id) { push_tagged(score, id, -1); }

void TopK::push_tagged(float score, int64_t id, int32_t tag) {
  // Heap ordered so that the worst entry (lowest score, then highest id) is at the front.
  auto worse_first = [](const Entry& a, const Entry& b) { return better(a.score, a.id, b.score, b.id); };
  if (static_cast<int64_t>(heap_.size()) < k_) {
    heap_.push_back({score, id, tag});
    std::push_heap(heap_.begin(), heap_.end(), worse_first);
  } else if (k_ > 0 && better(score, id, heap_.front().score, heap_.front().id)) {
    std::pop_heap(heap_.begin(), heap_.end(), worse_first);
    heap_.back() = {score, id, tag};
    std::push_heap(heap_.begin(), heap_.end(), worse_first);
  }
}

void TopK::write_tagged(float* scores, int64_t* ids, int32_t* tags) const {
  std::vector<Entry> sorted = heap_;
  std::sort(sorted.begin(), sorted.end(), [](const Entry& a, const Entry& b) { return better(a.score, a.id, b.score, b.id); });
  for (int64_t j = 0; j < k_; ++j) {
    const bool has = j < static_cast<int64_t>(sorted.size());
    scores[j] = has ? sorted[j].score : kNoScore;
    ids[j] = has ? sorted[j].id : -1;
    if (tags) tags[j] = has ? sorted[j].tag : -1;
  }
}

void TopK::write(float* scores, int64_t* ids) const { write_tagged(scores, ids, nullptr); }

void exact_topk(int64_t nq, const float* q, int64_t nx, const float* x, const int64_t* ids, int64_t d, int64_t k,
                const uint8_t* mask, float* scores, int64_t* out_ids) {
  DT_CHECK(k > 0, "top-k search: expected k > 0, found ", k);
  if (nq < kBlasThreshold) {
    // Few queries: SIMD dot products row by row (a BLAS call per block costs more than
    // it saves), as FAISS does below the same threshold.
#pragma omp parallel for if (nq > 1)
    for (int64_t i = 0; i < nq; ++i) {
      TopK top(k);
      std::vector<float> s(static_cast<size_t>(std::min<int64_t>(nx, 4096)));
      for (int64_t x0 = 0; x0 < nx; x0 += 4096) {
        const int64_t cols = std::min<int64_t>(4096, nx - x0);
        faiss::fvec_inner_products_ny(s.data(), q + i * d, x + x0 * d, static_cast<size_t>(d), static_cast<size_t>(cols));
        for (int64_t c = 0; c < cols; ++c) {
          if ((mask && !mask[x0 + c]) || !top.admits(s[c], ids[x0 + c])) continue;
          top.push(s[c], ids[x0 + c]);
        }
      }
      top.write(scores + i * k, out_ids + i * k);
    }
    return;
  }
  // Block sizes as FAISS' IndexFlat uses them (queries × rows ≈ 4 M floats, 16 MiB).
  const int64_t bq = std::min<int64_t>(nq, 1024), bx = std::min<int64_t>(std::max<int64_t>(nx, 1), 4096);
  std::vector<float> S(static_cast<size_t>(bq * bx));
  std::vector<TopK> tops(static_cast<size_t>(bq), TopK(k));
  for (int64_t q0 = 0; q0 < nq; q0 += bq) {
    const int64_t rows = std::min(bq, nq - q0);
    for (int64_t r = 0; r < rows; ++r) tops[static_cast<size_t>(r)].clear();
    for (int64_t x0 = 0; x0 < nx; x0 += bx) {
      const int64_t cols = std::min(bx, nx - x0);
      // A block of one query (the last of a batch; fewer than kBlasThreshold queries never
      // get here): a matrix-vector product reads the block once, sgemm would pack it first.
      if (rows == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(cols), static_cast<int>(d), 1.f, x + x0 * d,
                    static_cast<int>(d), q + q0 * d, 1, 0.f, S.data(), 1);
      else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(cols),
                    static_cast<int>(d), 1.f, q + q0 * d, static_cast<int>(d), x + x0 * d, static_cast<int>(d), 0.f,
                    S.data(), static_cast<int>(cols));
#pragma omp parallel for schedule(static) if (rows >= 16)
      for (int64_t r = 0; r < rows; ++r) {
        TopK& top = tops[static_cast<size_t>(r)];
        const float* s = S.data() + r * cols;
        const uint8_t* m = mask ? mask + x0 : nullptr;
        const int64_t* id = ids + x0;
        for (int64_t c = 0; c < cols; ++c) {
          if ((m && !m[c]) || !top.admits(s[c], id[c])) continue;
          top.push(s[c], id[c]);
        }
      }
    }
    for (int64_t r = 0; r < rows; ++r) tops[static_cast<size_t>(r)].write(scores + (q0 + r) * k, out_ids + (q0 + r) * k);
  }
}

}  // namespace dualtune::gallery

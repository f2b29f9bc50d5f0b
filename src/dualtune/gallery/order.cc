#include "dualtune/gallery/order.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <nlohmann/json.hpp>

#include "dualtune/eval/mixed_gallery.h"
#include "dualtune/eval/similarity.h"
#include "dualtune/util/error.h"

namespace dualtune::gallery {
namespace {

/// Feature row of one old vector: [o/‖o‖, log ‖o‖, 1].
void features(int64_t dim, const float* o, double* x) {
  double nrm = 0;
  for (int64_t c = 0; c < dim; ++c) nrm += double(o[c]) * o[c];
  nrm = std::sqrt(nrm);
  const double inv = nrm > 0 ? 1.0 / nrm : 0.0;
  for (int64_t c = 0; c < dim; ++c) x[c] = o[c] * inv;
  x[dim] = std::log(std::max(nrm, 1e-12));
  x[dim + 1] = 1.0;
}

/// Solves A x = b for a symmetric positive definite A (p × p, row-major) by Cholesky.
std::vector<double> cholesky_solve(std::vector<double> A, std::vector<double> b, int64_t p) {
  for (int64_t j = 0; j < p; ++j) {
    double s = A[j * p + j];
    for (int64_t k = 0; k < j; ++k) s -= A[j * p + k] * A[j * p + k];
    DT_CHECK(s > 0, "discrepancy predictor: the normal matrix is not positive definite (too few training items?)");
    const double l = std::sqrt(s);
    A[j * p + j] = l;
    for (int64_t i = j + 1; i < p; ++i) {
      double t = A[i * p + j];
      for (int64_t k = 0; k < j; ++k) t -= A[i * p + k] * A[j * p + k];
      A[i * p + j] = t / l;
    }
  }
  for (int64_t i = 0; i < p; ++i) {  // L y = b
    double t = b[i];
    for (int64_t k = 0; k < i; ++k) t -= A[i * p + k] * b[k];
    b[i] = t / A[i * p + i];
  }
  for (int64_t i = p - 1; i >= 0; --i) {  // Lᵀ x = y
    double t = b[i];
    for (int64_t k = i + 1; k < p; ++k) t -= A[k * p + i] * b[k];
    b[i] = t / A[i * p + i];
  }
  return b;
}

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  const double n = double(a.size());
  const double ma = std::accumulate(a.begin(), a.end(), 0.0) / n, mb = std::accumulate(b.begin(), b.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0.0;
}

}  // namespace

const char* order_names() { return "random, uncertainty, oracle"; }

std::vector<double> compatibility_error(int64_t n, int64_t d_old, const float* old_vectors, int64_t d_new,
                                        const float* new_vectors) {
  const int64_t d = std::min(d_old, d_new);
  const auto o = eval::normalized_prefix(n, d_old, old_vectors, d);
  const auto w = eval::normalized_prefix(n, d_new, new_vectors, d);
  std::vector<double> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    double dot = 0;
    for (int64_t c = 0; c < d; ++c) dot += double(o[i * d + c]) * w[i * d + c];
    t[static_cast<size_t>(i)] = 1.0 - dot;
  }
  return t;
}

std::vector<double> DiscrepancyPredictor::predict(int64_t n, const float* old_vectors) const {
  DT_CHECK(static_cast<int64_t>(w.size()) == dim + 2, "discrepancy predictor: expected ", dim + 2, " weights, found ",
           w.size());
  std::vector<double> out(static_cast<size_t>(n)), x(static_cast<size_t>(dim + 2));
  for (int64_t i = 0; i < n; ++i) {
    features(dim, old_vectors + i * dim, x.data());
    double s = 0;
    for (int64_t c = 0; c < dim + 2; ++c) s += w[c] * x[c];
    out[static_cast<size_t>(i)] = s;
  }
  return out;
}

std::string DiscrepancyPredictor::to_json() const {
  return nlohmann::json{{"dim", dim}, {"w", w}, {"lambda", lambda}, {"fitted_on", fitted_on}, {"train_corr", train_corr}}
      .dump();
}

DiscrepancyPredictor DiscrepancyPredictor::from_json(const std::string& text) {
  DiscrepancyPredictor p;
  try {
    const auto j = nlohmann::json::parse(text);
    p.dim = j.at("dim").get<int64_t>();
    p.w = j.at("w").get<std::vector<double>>();
    p.lambda = j.at("lambda").get<double>();
    p.fitted_on = j.at("fitted_on").get<int64_t>();
    p.train_corr = j.at("train_corr").get<double>();
  } catch (const nlohmann::json::exception& e) {
    DT_THROW("gallery: a stored order predictor is not the expected JSON: ", e.what());
  }
  DT_CHECK(static_cast<int64_t>(p.w.size()) == p.dim + 2, "gallery: a stored order predictor has ", p.w.size(),
           " weights, expected ", p.dim + 2);
  return p;
}

DiscrepancyPredictor fit_discrepancy_predictor(int64_t n, int64_t d_old, const float* old_vectors, int64_t d_new,
                                               const float* new_vectors, double lambda) {
  const int64_t p = d_old + 2;
  DT_CHECK(n >= p, "discrepancy predictor: expected at least ", p, " training items (old dimension + 2), found ", n);
  const auto t = compatibility_error(n, d_old, old_vectors, d_new, new_vectors);
  std::vector<double> A(static_cast<size_t>(p * p), 0.0), b(static_cast<size_t>(p), 0.0), x(static_cast<size_t>(p));
  for (int64_t i = 0; i < n; ++i) {
    features(d_old, old_vectors + i * d_old, x.data());
    for (int64_t r = 0; r < p; ++r) {
      b[r] += x[r] * t[i];
      for (int64_t c = 0; c <= r; ++c) A[r * p + c] += x[r] * x[c];
    }
  }
  double trace = 0;
  for (int64_t r = 0; r < p; ++r) {
    for (int64_t c = r + 1; c < p; ++c) A[r * p + c] = A[c * p + r];
    trace += A[r * p + r];
  }
  for (int64_t r = 0; r < p; ++r) A[r * p + r] += lambda * trace / double(p);
  DiscrepancyPredictor pred;
  pred.dim = d_old;
  pred.w = cholesky_solve(std::move(A), std::move(b), p);
  pred.lambda = lambda;
  pred.fitted_on = n;
  pred.train_corr = pearson(pred.predict(n, old_vectors), t);
  return pred;
}

std::vector<int64_t> order_by_score_desc(const std::vector<int64_t>& ids, const std::vector<double>& score) {
  DT_CHECK(ids.size() == score.size(), "order: expected one score per item, found ", score.size(), " for ", ids.size());
  std::vector<size_t> idx(ids.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
    return score[a] > score[b] || (score[a] == score[b] && ids[a] < ids[b]);
  });
  std::vector<int64_t> out(ids.size());
  for (size_t i = 0; i < idx.size(); ++i) out[i] = ids[idx[i]];
  return out;
}

std::vector<int64_t> random_order(const std::vector<int64_t>& ids, uint64_t seed) {
  const auto perm = eval::old_item_order(static_cast<int64_t>(ids.size()), seed);
  std::vector<int64_t> out(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) out[i] = ids[static_cast<size_t>(perm[i])];
  return out;
}

}  // namespace dualtune::gallery

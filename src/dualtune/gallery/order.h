#pragma once
// Backfill orders: which items get the new model's embedding first.
//
//   random       a seeded permutation (the baseline every order is compared with)
//   uncertainty  items whose old embedding is predicted to be furthest from where the new
//                model puts them go first. FastFill (Jaeckle et al., ICLR 2023) learns an
//                uncertainty of the old embedding alone, with a forward transformation,
//                and backfills the most uncertain items first. Without a transformation
//                the quantity it estimates is the compatibility error of an item,
//                t = 1 − cos(old[:d], new[:d]) (d = min(Do, Dn)): an item with a large t is
//                placed by new queries far from where its new embedding would be.
//                DiscrepancyPredictor learns t from old embeddings alone (ridge regression
//                on the normalised old vector and its log-norm) on a training set embedded
//                by both models, and ranks gallery items by the prediction, which needs
//                neither images nor the new model.
//   oracle       the true t (needs every new embedding, so only for `gallery curve`): the
//                upper reference an uncertainty order tries to approach.
// Ties are broken by item id, so an order is a pure function of its inputs.
#include <cstdint>
#include <string>
#include <vector>

namespace dualtune::gallery {

/// Ridge regression of the compatibility error t from an old embedding:
/// t̂ = w · [o/‖o‖, log ‖o‖, 1].
struct DiscrepancyPredictor {
  int64_t dim = 0;            ///< old embedding size Do
  std::vector<double> w;      ///< Do + 2 weights
  double lambda = 0;          ///< ridge strength used
  int64_t fitted_on = 0;      ///< training pairs
  double train_corr = 0;      ///< Pearson correlation of t̂ with t on the training pairs

  /// Predictions for n old vectors (n × dim).
  std::vector<double> predict(int64_t n, const float* old_vectors) const;
  std::string to_json() const;
  static DiscrepancyPredictor from_json(const std::string& text);
};

/// Compatibility error t_i = 1 − cos(old_i[:d], new_i[:d]), d = min(Do, Dn), for n items.
std::vector<double> compatibility_error(int64_t n, int64_t d_old, const float* old_vectors, int64_t d_new,
                                        const float* new_vectors);

/// Fits the predictor on n items embedded by both models; lambda is relative to the
/// trace of the normal matrix (lambda · tr(XᵀX) / (Do + 2) is added to its diagonal).
DiscrepancyPredictor fit_discrepancy_predictor(int64_t n, int64_t d_old, const float* old_vectors, int64_t d_new,
                                               const float* new_vectors, double lambda = 1e-3);

/// Item ids sorted by score descending, ties by id ascending.
std::vector<int64_t> order_by_score_desc(const std::vector<int64_t>& ids, const std::vector<double>& score);

/// A seeded permutation of ids (Fisher–Yates on mt19937_64, as eval::old_item_order).
std::vector<int64_t> random_order(const std::vector<int64_t>& ids, uint64_t seed);

/// Known order names, for messages: "random, uncertainty, oracle".
const char* order_names();

}  // namespace dualtune::gallery

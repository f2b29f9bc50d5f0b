#pragma once
// Compatibility evaluation: the two entry points the CLI and the demo call.
//   evaluate_case           one query set against one gallery (self-test, cross-test)
//   evaluate_compatibility  all models against each other + mixed galleries + verdict
// Features are n×d row-major float32 (FeatureSet); retrieval compares L2-normalised
// vectors by cosine similarity; when query and gallery dimensions differ, both use
// their first min(dq, dg) components.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dualtune/eval/flip_rate.h"
#include "dualtune/eval/metrics.h"
#include "dualtune/eval/verdict.h"
#include "dualtune/features/feature_set.h"

namespace dualtune::eval {

struct EvalOptions {
  std::string protocol = "loo";                ///< "loo" | "reid" (see protocol.h)
  int64_t max_block_bytes = int64_t(32) << 20;   ///< cap on the similarity block (query rows × gallery)
  std::vector<double> mixed_fractions{0, 0.25, 0.5, 0.75, 1};  ///< fractions r of old gallery items
  uint64_t seed = 0;                           ///< seeds the mixed-gallery permutation
  int threads = 0;                             ///< OpenMP / OpenBLAS threads; 0 = all cores
  bool tar_far = true;                         ///< compute TAR@FAR (NaN in Metrics when off)
  std::function<void(const std::string&)> progress;  ///< optional: one line per finished case
};

/// Metrics of query against gallery.
/// loo: query and gallery are the same items (same n and labels, index-aligned, possibly
/// features of different models); item i is excluded from its own gallery.
/// reid: gallery items with the query's label and camera are excluded.
/// Gallery label -1 is junk (excluded); queries with label -1 or without a valid
/// positive are skipped (Metrics::skipped). Memory: at most max_block_bytes for
/// similarities plus the normalised copies of both sets.
/// top1 (optional): each query's top-1 outcome, from the same ranks as CMC (flip_rate.h).
Metrics evaluate_case(const features::FeatureSet& query, const features::FeatureSet& gallery, const EvalOptions& opt,
                      std::vector<Top1>* top1 = nullptr);

/// One model's features. For loo, query and gallery are the same set (use loo_model).
struct ModelFeatures {
  std::string name;
  features::FeatureSet query, gallery;
};
ModelFeatures loo_model(std::string name, features::FeatureSet set);

struct MixedPoint {
  double old_fraction = 0;  ///< requested r
  int64_t old_items = 0;    ///< round(r·n) gallery items carrying old features
  Metrics metrics;          ///< new-model queries against the mixed gallery
  FlipRates flips;          ///< top-1 flips of this case against old/old
};

/// Upgrade from the old model to one new model.
struct UpgradeResult {
  std::string new_model;
  Metrics old_old, new_new, new_old;  ///< self-tests and the cross-test (query new, gallery old)
  std::vector<MixedPoint> mixed;      ///< one per EvalOptions::mixed_fractions
  FlipRates flips_new_new, flips_new_old;  ///< top-1 flips against old/old (flip_rate.h)
  Verdict map, rank1;                 ///< criterion and gain on mAP and on rank-1
};

struct CompatibilityReport {
  std::string protocol;
  std::string old_model;
  std::vector<std::string> models;                 ///< model names, matrix order
  std::vector<int64_t> dims;                       ///< embedding size per model
  int64_t num_query = 0, num_gallery = 0;
  std::vector<std::vector<Metrics>> matrix;        ///< matrix[q][g]: queries of models[q] vs gallery of models[g]
  std::vector<UpgradeResult> upgrades;             ///< one per model other than old_model, in model order
  uint64_t seed = 0;
  int64_t max_block_bytes = 0;
};

/// Evaluates every (query model, gallery model) pair, then for each new model the
/// mixed galleries and the verdict against old_name (empty: the first model).
/// All models must describe the same items in the same order (labels/cams equal).
CompatibilityReport evaluate_compatibility(const std::vector<ModelFeatures>& models, const std::string& old_name,
                                           const EvalOptions& opt);

}  // namespace dualtune::eval

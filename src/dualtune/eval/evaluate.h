#pragma once
// Compatibility evaluation: the two entry points the CLI and the demo call.
//   evaluate_case           one query set against one gallery (self-test, cross-test)
//   evaluate_compatibility  all models against each other + mixed galleries + verdict
// Features are n×d row-major float32 (FeatureSet); retrieval compares L2-normalised
// vectors by cosine similarity; when query and gallery dimensions differ, both use
// their first min(dq, dg) components.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "dualtune/eval/flip_rate.h"
#include "dualtune/eval/metrics.h"
#include "dualtune/eval/verdict.h"
#include "dualtune/features/feature_set.h"

namespace dualtune::eval {

/// One upgrade to judge: queries of new_model against the gallery of old_model (the
/// cross-test), with old/old and new/new as its references. `gallery` names another
/// model whose features stand for the old gallery in the cross-test and the mixed
/// galleries: h(old), the old embeddings mapped into the new space by a forward
/// transformation (`dualtune transform apply`), so new→h(old) is judged against old/old
/// like new→old. Empty: old_model's own gallery.
struct UpgradeSpec {
  std::string new_model, old_model, gallery;
};

/// A gallery holding several generations at once (mixed_gallery.h generations_gallery),
/// searched by the queries of query_model.
struct GenerationMixSpec {
  std::string query_model;
  std::vector<std::string> galleries;  ///< models whose features the items hold, oldest first
  std::vector<double> fractions;       ///< share of the items per gallery model, summing to 1
};

struct EvalOptions {
  std::string protocol = "loo";                ///< "loo" | "reid" (see protocol.h)
  /// Upgrades to judge; empty: every model against the old model (evaluate_compatibility).
  std::vector<UpgradeSpec> upgrades;
  std::vector<GenerationMixSpec> generation_mixes;  ///< galleries of several generations, if any
  int64_t max_block_bytes = int64_t(32) << 20;   ///< cap on the similarity block (query rows × gallery)
  std::vector<double> mixed_fractions{0, 0.25, 0.5, 0.75, 1};  ///< fractions r of old gallery items
  uint64_t seed = 0;                           ///< seeds the mixed-gallery permutation
  int threads = 0;                             ///< OpenMP / OpenBLAS threads; 0 = all cores
  bool tar_far = true;                         ///< compute TAR@FAR (NaN in Metrics when off)
  /// evaluate_compatibility keeps every matrix case's per-query results in
  /// CompatibilityReport::case_queries (24 bytes per query and case), for diagnose_all.
  bool keep_case_queries = false;
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
/// per_query (optional): each query's AP, INP and first-positive rank (0: skipped).
Metrics evaluate_case(const features::FeatureSet& query, const features::FeatureSet& gallery, const EvalOptions& opt,
                      std::vector<Top1>* top1 = nullptr, QueryResults* per_query = nullptr);

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

/// Upgrade from an old model to a new model.
struct UpgradeResult {
  std::string new_model;
  std::string old_model;      ///< whose old/old is the reference
  std::string gallery_model;  ///< features of the cross-test gallery: old_model, or e.g. its h(old)
  Metrics old_old, new_new, new_old;  ///< self-tests and the cross-test (query new, gallery old)
  std::vector<MixedPoint> mixed;      ///< one per EvalOptions::mixed_fractions
  FlipRates flips_new_new, flips_new_old;  ///< top-1 flips against old/old (flip_rate.h)
  Verdict map, rank1;                 ///< criterion and gain on mAP and on rank-1
};

struct GenerationMixResult {
  GenerationMixSpec spec;
  Metrics metrics;  ///< spec.query_model's queries against the generations' gallery
};

struct CompatibilityReport {
  std::string protocol;
  std::string old_model;
  std::vector<std::string> models;                 ///< model names, matrix order
  std::vector<int64_t> dims;                       ///< embedding size per model
  int64_t num_query = 0, num_gallery = 0;
  std::vector<std::vector<Metrics>> matrix;        ///< matrix[q][g]: queries of models[q] vs gallery of models[g]
  std::vector<UpgradeResult> upgrades;             ///< EvalOptions::upgrades, or one per model other than old_model
  std::vector<GenerationMixResult> generation_mixes;  ///< one per EvalOptions::generation_mixes
  uint64_t seed = 0;
  int64_t max_block_bytes = 0;
  /// With EvalOptions::keep_case_queries: per-query results of every matrix case by
  /// (query model, gallery model), for the class diagnostics (diagnose_all), which would
  /// otherwise rank the same cases again. Not written to report.json.
  std::map<std::pair<std::string, std::string>, QueryResults> case_queries;
};

/// Evaluates every (query model, gallery model) pair, then for each upgrade (opt.upgrades,
/// or every model against old_name, empty: the first model) the mixed galleries, the flip
/// rates and the verdict, then the generation mixes. All models must describe the same
/// items in the same order (labels/cams equal). Unknown names are errors naming the models.
CompatibilityReport evaluate_compatibility(const std::vector<ModelFeatures>& models, const std::string& old_name,
                                           const EvalOptions& opt);

/// The upgrades of a lineage (models oldest first, e.g. v1, v2, v3): every (newer, older)
/// pair, by newer model, nearest predecessor first: (v2, v1), (v3, v2), (v3, v1).
std::vector<UpgradeSpec> lineage_upgrades(const std::vector<std::string>& lineage);

/// Galleries of several generations for a lineage of three or more: the newest model's
/// queries against items held in equal shares by every generation, and by every
/// generation but the newest (the gallery on the day the newest model ships).
std::vector<GenerationMixSpec> lineage_mixes(const std::vector<std::string>& lineage);

}  // namespace dualtune::eval

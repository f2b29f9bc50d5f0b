#pragma once
// Per-class diagnostics of one upgrade: where new→old retrieval gains or loses against
// old/old, split by whether the old model was trained on the class, and where the new
// embeddings sit in the old space. Leave-one-out over one set: the old and the new
// features describe the same items in the same order. Cosine similarity of
// L2-normalised features on the first k = min(Do, Dn) components, as in evaluate_case.
//
// For a query i of class y with feature x_i (eo_i for old/old, en_i for new→old) and
// ô_j = norm(eo_j[:k]), n̂_j = norm(en_j[:k]):
//   AP, top-1       per query, exactly as evaluate_case ranks (ranking.h)
//   centre margin   cos(x_i, c_y^{−i}) − max_{k≠y} cos(x_i, c_k),  c_k = Σ_{j of class k} ô_j
//                   (the old class-mean direction; item i is left out of its own class
//                   mean, as it is out of its own gallery): > 0 iff x_i is nearest to its
//                   own class among the old class means
//   NN margin       max_{j≠i, y_j=y} cos(x_i, ô_j) − max_{y_j≠y} cos(x_i, ô_j): > 0 iff the
//                   nearest old gallery item is of the query's class (top-1 right, ties aside)
//   alignment       per class: cos(Σ_{j of y} n̂_j, Σ_{j of y} ô_j), the new class-mean
//                   direction against the old one; own-mean rank 1 when the nearest old
//                   class mean of the new class mean is its own class
// Group means (all classes, classes the old model saw, classes it did not) are over the
// group's queries for the per-query values and over its classes for the alignment.
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "dualtune/eval/evaluate.h"
#include "dualtune/features/feature_set.h"

namespace dualtune::eval {

/// Mean values over a class or a group of classes; NaN where nothing was measured.
struct DiagnosticValues {
  int64_t queries = 0;  ///< queries with at least one positive in their gallery
  double ap_old_old = 0, ap_new_new = 0, ap_new_old = 0;
  double top1_old_old = 0, top1_new_new = 0, top1_new_old = 0;
  double centre_margin_old = 0, centre_margin_new = 0;  ///< x = eo_i resp. en_i against the old class means
  double nn_margin_old = 0, nn_margin_new = 0;          ///< x = eo_i resp. en_i against the old gallery
  double alignment = 0;                                  ///< mean over classes of cos(new mean, old mean)
  double own_mean_rank1 = 0;                             ///< fraction of classes whose new mean is nearest its old mean
};

struct ClassDiagnostics {
  int64_t label = 0;
  std::string name;
  bool seen = false;  ///< the old model was trained on this class (by name)
  int64_t items = 0;
  DiagnosticValues values;
};

struct GroupDiagnostics {
  std::string name;  ///< "all", "seen by the old model", "unseen by the old model"
  int64_t classes = 0;
  DiagnosticValues values;
};

struct UpgradeDiagnostics {
  std::string old_model, new_model;
  std::vector<ClassDiagnostics> classes;  ///< by label, labels with at least one item
  std::vector<GroupDiagnostics> groups;   ///< all; seen and unseen when both are non-empty
};

/// Diagnostics of the upgrade old → new over one leave-one-out set. Class names come from
/// old_f.class_names (or the label as a number when it has none); a class is seen when its
/// name is in seen_classes. old_f and new_f must have the same items (n, labels), else
/// dualtune::Error. Labels −1 are junk: never queries, never gallery items.
/// `known` (optional): the evaluate_compatibility report (with keep_case_queries, the
/// same max_block_bytes) of models whose query and gallery sets are old_f and new_f; its
/// per-query results of the old/old, new/new and new→old cases are used instead of
/// ranking them again (the same values: evaluate_case is deterministic). diagnose_all
/// checks the sets; a report with other block sizes or without the cases is not used.
UpgradeDiagnostics diagnose_upgrade(const features::FeatureSet& old_f, const features::FeatureSet& new_f,
                                    const std::string& old_name, const std::string& new_name,
                                    const std::set<std::string>& seen_classes, const EvalOptions& opt,
                                    const CompatibilityReport* known = nullptr);

/// diagnose_upgrade from the model named old_name to every other model (leave-one-out:
/// each model's query set), in model order; `known` as for diagnose_upgrade.
std::vector<UpgradeDiagnostics> diagnose_all(const std::vector<ModelFeatures>& models, const std::string& old_name,
                                             const std::set<std::string>& seen_classes, const EvalOptions& opt,
                                             const CompatibilityReport* known = nullptr);

}  // namespace dualtune::eval

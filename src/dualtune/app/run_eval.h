#pragma once
// `dualtune eval` without CLI11: load feature directories, evaluate, write the report.
// Kept torch-free (and in dualtune_core) so it is tested in test_core.
#include <cstdint>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "dualtune/eval/evaluate.h"

namespace dualtune::app {

struct EvalCliOptions {
  std::vector<std::string> features;  ///< "NAME=DIR" (loo) or "NAME=QUERY_DIR,GALLERY_DIR" (reid)
  std::string old_model;              ///< deployed model; empty = the first one given
  std::string protocol = "loo";       ///< loo | reid
  std::string out_dir;                ///< report directory (required)
  int64_t max_block_mb = 32;          ///< similarity block budget in MiB
  uint64_t seed = 0;                  ///< mixed-gallery permutation seed
  std::string mixed = "0,0.25,0.5,0.75,1";  ///< comma-separated fractions of old gallery items
  int threads = 0;                    ///< 0 = all cores
  int64_t topk = 0;                   ///< > 0: also dump each case's top-k neighbours (FAISS) to out_dir/topk/
  std::vector<std::string> upgrades;  ///< "NEW:OLD" or "NEW:OLD:GALLERY" (e.g. h(old) features); empty = all vs old
  std::string lineage;                ///< "v1,v2,v3" (oldest first): every (newer, older) pair + generation galleries
  bool diagnose = false;              ///< also write per-class diagnostics (class_diagnostics.h, loo only)
  std::string seen_classes;           ///< class map JSON (or run directory holding classes.json) of the
                                      ///< classes the old model was trained on; empty: none known
};

/// Parses "NEW:OLD" or "NEW:OLD:GALLERY"; throws with the expected form on anything else.
eval::UpgradeSpec parse_upgrade_spec(const std::string& spec);

/// Names of the classes in a class map JSON, or in DIR/classes.json when path is a directory.
std::set<std::string> load_class_names(const std::string& path);

/// A parsed --features value.
struct FeatureSpec {
  std::string name, query_dir, gallery_dir;  ///< loo: query_dir == gallery_dir
};

/// Parses "NAME=DIR" (loo) or "NAME=QUERY_DIR,GALLERY_DIR" (reid); throws with the
/// expected form on anything else.
FeatureSpec parse_feature_spec(const std::string& spec, const std::string& protocol);

/// Loads the features, runs eval::evaluate_compatibility, writes the report into out_dir,
/// prints the Markdown summary and the report path to out. Returns 0; throws
/// dualtune::Error on bad input.
int run_eval(const EvalCliOptions& opt, std::ostream& out);

}  // namespace dualtune::app

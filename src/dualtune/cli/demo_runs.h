// What the demo's scenarios share: options, the plan of each run directory (reuse,
// resume or train), trainings side by side as child processes, test-feature
// extraction, and the summary's number format.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dualtune/eval/evaluate.h"

namespace dualtune::cli {

struct DemoOptions {
  std::string out = "demo_out";
  std::string configs;    ///< empty: the scenario's configs/<dir> among the shipped configs (util/install_paths.h)
  std::string data_root;  ///< empty: the scenario's default (none for openset)
  std::string scenario = "default";
  std::vector<std::string> methods{"independent", "l2", "bct", "dual-tuning"};
  int seeds = 1;
  int first_seed = 0;
  bool quick = false, fresh = false;
  bool transition = true;  ///< end with the gallery transition (first seed, dual-tuning)
  int threads = 0;
  int jobs = 0;  ///< trainings side by side (0 = auto)
  int64_t eval_limit = 0;
  int64_t train_limit = 0;
  int64_t epochs_old = 0, epochs_new = 0;
  std::string precision = "auto";      ///< optim.precision of every training (engine/precision.h)
  std::vector<std::string> overrides;  ///< applied to every new model
  std::string variant;                 ///< ablation tag: runs "<method>@<variant>", own summary
};

/// Overrides of the first model (old) and of every later one (new) for o's budget:
/// data root, threads, precision, --quick subsets (quick_old / quick_new images, 2 / 1 epochs),
/// --train-limit, --epochs-old / --epochs-new, then o.overrides on the new models.
std::pair<std::vector<std::string>, std::vector<std::string>> budget_overrides(const DemoOptions& o,
                                                                               int64_t quick_old,
                                                                               int64_t quick_new);

/// One training the demo needs. `after` is the index of the training that must finish
/// first (its old model), -1 if none.
struct Training {
  std::string config, run_dir;
  std::vector<std::string> overrides;  ///< with output_dir
  bool resume = false;
  int after = -1;
};

/// What to do for one run directory: `training` is empty when run_dir holds a finished
/// run of this config (and, for a compatible run, of this old model: `old_hash`, the old
/// run's config hash). An interrupted run of the same config continues after its last
/// complete epoch. Runs written before meta.json recorded old_config_hash are taken as
/// matching. `hash` is the resolved config's hash.
struct Plan {
  std::string hash;
  std::optional<Training> training;
};

Plan plan_run(const std::string& config_path, std::vector<std::string> overrides, const std::string& run_dir,
              const std::string& old_hash, bool fresh);

/// Appends plan's training (if any) to `trainings`, to start after training `after`;
/// returns its index, or -1 when the run is reused.
int schedule(Plan& plan, int after, std::vector<Training>& trainings);

/// Runs the trainings: one after the other in this process (jobs <= 1), or up to `jobs`
/// at once as `dualtune train` child processes with `threads_per_job` threads each. A
/// failed training stops the others (SIGTERM; each keeps its last complete epoch and
/// resumes on the next run) and the demo fails naming it. Returns the number of jobs used.
int run_trainings(const std::vector<Training>& ts, const DemoOptions& o);

/// Test features of each (name, run dir) on the test split of `reference_run`'s data
/// (all classes, the first eval_limit images when > 0), saved under features_dir/<name>.
/// precision: the demo's --precision (auto | fp32 | bf16), resolved as in training.
std::vector<eval::ModelFeatures> extract_test_features(const std::string& reference_run, int64_t eval_limit,
                                                       const std::vector<std::pair<std::string, std::string>>& runs,
                                                       const std::string& features_dir, const std::string& precision);

/// mean ± half-range over seeds; rates are printed in %, ratios (scale 1) with 2 decimals.
std::string mean_pm(const std::vector<double>& v, double scale = 100.0);

/// " Peak RSS: demo process N MiB[, largest training process M MiB]." (children: jobs > 1).
std::string peak_rss_note(bool children);

/// `dualtune demo --scenario generations` (demo_generations.cc).
int run_generations_demo(DemoOptions o);

}  // namespace dualtune::cli

#pragma once
// The last act of `dualtune demo`: the gallery transition (docs/GALLERY.md). A gallery
// is built from the old model's test embeddings, the new model is rolled out, calibrated
// on training images embedded by both models, and backfilled from the test images in ten
// steps, once in random order and once in the uncertainty order; after every step the
// new model's queries are evaluated against the gallery as it is (leave-one-out) with
// the raw, rank and calibrated merges. Table + curve.json/md + plot.
#include <string>

namespace dualtune::cli {

struct TransitionInputs {
  std::string seed_dir;      ///< demo_out/<scenario>/seed<s>: features/<name>, report/
  std::string old_name, new_name;  ///< model names = run directories under seed_dir
  std::string tag;           ///< "" or "_<variant>": writes gallery<tag>/ and report<tag>/transition
  std::string data_root;
  int64_t calibration_images = 5000;  ///< training images embedded by both models for the fits
  int threads = 0;
  std::string precision = "auto";  ///< forward passes: auto | fp32 | bf16 (engine/precision.h)
};

/// Runs the transition and returns its Markdown table (mAP per step, area).
std::string run_demo_transition(const TransitionInputs& in);

}  // namespace dualtune::cli

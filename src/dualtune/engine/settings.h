#pragma once
// The one place where a resolved Config becomes option structs: those of data/ and
// models/, and those of the objective (objective.h), the trainer (trainer.h) and the
// forward-transform run (transform_run.h). Everything below engine reads structs, never
// config keys, so renaming a key changes this file (and the schema) only.
#include <cstdint>
#include <string>
#include <vector>

#include "dualtune/config/config.h"
#include "dualtune/data/dataset.h"
#include "dualtune/data/loader.h"
#include "dualtune/data/transforms.h"

namespace dualtune::models {
struct ModelSpec;
}

namespace dualtune::engine {

struct ObjectiveOptions;
struct TrainSettings;
struct TransformRunOptions;

/// The top-level keys every run-directory writer reads (train, transform train), and the
/// resolved config it records.
struct RunSettings {
  std::string output_dir = "runs/default";  ///< the run directory
  int threads = 0;                          ///< intra-op threads; 0 = all cores
  uint64_t seed = 0;
  std::string config_yaml;  ///< saved as config.yml ("" = not written)
  std::string config_hash;  ///< recorded in meta.json (train --resume requires the same)
};

/// What a model sees of an image (data: height, width, channels, mean, std). Two models
/// fed the same batch must have been trained on the same input.
struct InputSpec {
  int64_t height = 28, width = 28, channels = 1;
  std::vector<double> mean{0.2860}, std{0.3530};
};

RunSettings run_settings(const config::Config& cfg);
/// split: "" = data.train_split.
data::DatasetSpec dataset_spec(const config::Config& cfg, const std::string& split = "");
/// The data section's test split (data.test_split), every class of the subset, no limit.
data::DatasetSpec test_dataset_spec(const config::Config& cfg);
InputSpec input_spec(const config::Config& cfg);
/// train = true: the augmentations of `augment:`; false: test-time transform.
data::TransformOptions transform_options(const config::Config& cfg, bool train);
data::LoaderOptions loader_options(const config::Config& cfg, bool train);
models::ModelSpec model_spec(const config::Config& cfg, int64_t num_classes);
/// `loss:`, `compat:` and `old:`, with what the prototype pass needs of `data:`.
ObjectiveOptions objective_options(const config::Config& cfg);
/// Everything `dualtune train` reads of cfg, with cfg's resolved text and hash.
TrainSettings train_settings(const config::Config& cfg);
/// Everything `dualtune transform train` reads of cfg, with cfg's resolved text and hash.
TransformRunOptions transform_run_options(const config::Config& cfg);

/// A model run directory fed the same batches as a run with `input` must have been
/// trained on the same input: data.height, width, channels, mean and std equal. `what`
/// names the model in the error ("old model", "new model"). Does nothing for a file
/// (TorchScript).
void check_same_input(const InputSpec& input, const std::string& model_path, const std::string& what);
/// Sets libtorch's (and OpenMP's) intra-op threads: threads = 0 -> all cores. Returns the count.
int set_threads(int threads);

}  // namespace dualtune::engine

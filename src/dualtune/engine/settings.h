#pragma once
// Translation of a resolved Config into the option structs of data/ and models/.
#include <string>

#include "dualtune/config/config.h"
#include "dualtune/data/dataset.h"
#include "dualtune/data/loader.h"
#include "dualtune/data/transforms.h"

namespace dualtune::models {
struct ModelSpec;
}

namespace dualtune::engine {

/// split: "" = data.train_split.
data::DatasetSpec dataset_spec(const config::Config& cfg, const std::string& split = "");
/// train = true: the augmentations of `augment:`; false: test-time transform.
data::TransformOptions transform_options(const config::Config& cfg, bool train);
data::LoaderOptions loader_options(const config::Config& cfg, bool train);
models::ModelSpec model_spec(const config::Config& cfg, int64_t num_classes);
/// A model run directory fed the same batches as cfg's run must have been trained on the
/// same input: data.height, width, channels, mean and std equal. `what` names the model
/// in the error ("old model", "new model"). Does nothing for a file (TorchScript).
void check_same_input(const config::Config& cfg, const std::string& model_path, const std::string& what);
/// Sets libtorch's (and OpenMP's) intra-op threads: threads = 0 -> all cores. Returns the count.
int set_threads(int threads);

}  // namespace dualtune::engine

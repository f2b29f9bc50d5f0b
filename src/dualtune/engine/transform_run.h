#pragma once
// Training and applying a forward transformation h (models/transform_net.h).
//
// A transform run directory:
//   config.yml       the resolved config: its transform: section, and the data: / augment:
//                    sections of the training set the embedding pairs were taken from
//   transform.pt     h's weights + its spec, written atomically
//   meta.json        old / new / side-information models (paths, config hashes), dims,
//                    pair counts, held-out MSE per epoch, code version
//   train_log.jsonl  one JSON record per epoch
// h is fitted with the L2 loss of FCT, mean over items of ‖h(eo, s) − en‖² / Dn (MSE),
// on (old, new) embedding pairs of the training images: one pass with the test-time
// transform plus `transform.augmented_passes` passes with the training augmentation.
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dualtune/config/config.h"
#include "dualtune/data/dataset.h"
#include "dualtune/data/transforms.h"
#include "dualtune/engine/settings.h"
#include "dualtune/features/feature_set.h"
#include "dualtune/models/transform_net.h"

namespace dualtune::engine {

/// Embedding pairs: old N × Do, target (new model) N × Dn, side N × Ds (undefined if none).
struct EmbeddingPairs {
  torch::Tensor old, target, side;
};

/// transform: epochs, batch_size, lr, weight_decay, holdout (defaults = the schema's).
struct TransformFitOptions {
  int64_t epochs = 30;
  int64_t batch_size = 256;
  double lr = 5e-4;
  double weight_decay = 3e-5;
  double holdout = 0.05;  ///< fraction of pairs kept out of training to measure the MSE
  uint64_t seed = 0;
};

struct TransformFit {
  models::ForwardTransform h{nullptr};  ///< eval mode
  std::vector<double> train_mse, holdout_mse;  ///< per epoch
  double holdout_mse_before = 0;  ///< MSE of h at initialisation on the held-out pairs
};

/// Fits h (Adam, cosine decay, shuffled mini-batches; deterministic for a seed).
/// log receives one line per epoch.
TransformFit fit_forward_transform(const EmbeddingPairs& pairs, const models::ForwardTransformSpec& spec,
                                   const TransformFitOptions& options,
                                   const std::function<void(const std::string&)>& log);

/// What `dualtune transform train` reads of a config: seed, threads, output_dir, the
/// training set of data: / augment:, and transform: (settings.h fills it).
struct TransformRunOptions {
  RunSettings run;  ///< run.seed: augmentation draws (pass p uses seed + p); fit.seed is the same
  int workers = 2;  ///< decoding threads
  data::DatasetSpec data;                   ///< the training set the pairs are embedded over
  InputSpec input;                          ///< every model run directory must share it
  data::TransformOptions train_transform, test_transform;
  int64_t augmented_passes = 2;  ///< passes with the training augmentation (plus one test-time pass)
  std::string side_info;         ///< side-information model, "" = none
  int64_t side_dim = 0;          ///< components of the side-information embedding kept (0 = all)
  int64_t width = 2048, depth = 2;  ///< h's hidden blocks
  TransformFitOptions fit;
};

/// `dualtune transform train`: embeds pairs over the training set with the old and new
/// models (run directories or TorchScript files) and the side-information model of
/// options.side_info if any, fits h, and writes the run directory options.output_dir.
void train_transform_run(const TransformRunOptions& options, const std::string& old_model,
                         const std::string& new_model, const std::function<void(const std::string&)>& log);
/// train_transform_run(transform_run_options(cfg), ...).
void train_transform_run(const config::Config& cfg, const std::string& old_model, const std::string& new_model,
                         const std::function<void(const std::string&)>& log);

struct TransformRun {
  models::ForwardTransform h{nullptr};  ///< eval mode
  nlohmann::json meta;
};

/// Loads a transform run directory; errors name the missing or corrupt file.
TransformRun load_transform_run(const std::string& dir);

/// h applied to n old embeddings (row-major n × Do) and side information (n × Ds, or
/// nullptr when h has none) -> n × Dn, in batches, without gradients.
std::vector<float> apply_forward_transform(TransformRun& run, int64_t n, const float* old, const float* side);

/// The FeatureSet `old` (and `side`, same items) mapped by h: same labels, cams, paths and
/// class names, features n × Dn. Errors name the dimension or item mismatch.
features::FeatureSet transform_features(TransformRun& run, const features::FeatureSet& old,
                                        const features::FeatureSet* side);

}  // namespace dualtune::engine

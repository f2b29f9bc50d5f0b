#pragma once
// `dualtune train`: trains an EmbeddingModel into its run directory (run_dir.h), with
// per-epoch atomic checkpoints and exact resume. What to train comes as TrainSettings
// (settings.h fills them from a Config; the defaults of OptimizerOptions are the
// schema's); how this invocation runs as TrainOptions.
#include <cstdint>
#include <string>
#include <vector>

#include "dualtune/config/config.h"
#include "dualtune/data/dataset.h"
#include "dualtune/data/loader.h"
#include "dualtune/data/transforms.h"
#include "dualtune/engine/model_init.h"
#include "dualtune/engine/objective.h"
#include "dualtune/models/embedding_model.h"

namespace dualtune::engine {

/// `optim:` — optimizer, learning-rate schedule (schedule.h), epochs, precision.
struct OptimizerOptions {
  std::string name = "adam";  ///< adam | sgd (Nesterov)
  double lr = 0.001;
  double weight_decay = 0.0005;
  double momentum = 0.9;  ///< sgd
  int64_t epochs = 6;
  std::string schedule = "cosine";  ///< cosine | multistep | constant
  double warmup_epochs = 0;
  std::vector<int64_t> milestones;  ///< multistep: epochs where lr is multiplied by gamma
  double gamma = 0.1;
  std::string precision = "fp32";  ///< fp32 | bf16 (precision.h)
};

struct TrainSettings {
  RunSettings run;            ///< threads = 0: all cores, shared by the ranks on a machine;
                              ///< config.yml is needed by load_run_model; --resume needs the same hash
  int64_t log_every = 50;     ///< steps between progress lines / JSON log records
  bool test_accuracy = true;  ///< top-1 on test_data after each epoch
  data::DatasetSpec train_data, test_data;
  data::TransformOptions train_transform, test_transform;
  /// Training batches: batch_size is the global batch (split over the ranks with the
  /// random sampler), sampler, p, k, workers, seed.
  data::LoaderOptions loader;
  models::ModelSpec model;  ///< num_classes is taken from the training set
  ModelInitOptions init;    ///< model.init: pretrained weights before the first step (not on --resume)
  OptimizerOptions optim;
  ObjectiveOptions objective;
  std::string device = "auto";  ///< cpu | cuda | auto (device.h), resolved before any step
};

struct TrainOptions {
  bool resume = false;  ///< continue from the last complete epoch in output_dir
  bool quiet = false;   ///< no progress lines on stdout (JSON log still written)
};

struct TrainResult {
  std::string run_dir;
  int64_t epochs = 0;
  double test_accuracy = -1;   ///< top-1 classification on the test split (last epoch), -1 if not measured
  double images_per_second = 0;  ///< training throughput of the last epoch
  double epoch_seconds = 0;      ///< wall time of the last epoch
};

/// Throws dualtune::Error on bad input, and on a NaN/Inf loss (naming the term and the
/// step; the last checkpoint on disk is the last good epoch).
TrainResult train(const TrainSettings& settings, const TrainOptions& options);
/// train(train_settings(cfg), options).
TrainResult train(const config::Config& cfg, const TrainOptions& options);

}  // namespace dualtune::engine

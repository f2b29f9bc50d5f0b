#pragma once
// `dualtune train`: trains an EmbeddingModel from a resolved Config into its run
// directory (run_dir.h), with per-epoch atomic checkpoints and exact resume.
#include <string>

#include "dualtune/config/config.h"

namespace dualtune::engine {

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
TrainResult train(const config::Config& cfg, const TrainOptions& options);

}  // namespace dualtune::engine

#pragma once
// Dataset options shared by extract / prototypes / eval: either a config file
// (its data: section) or explicit --format/--root/--split/--classes, with the input
// transform taken from the model's run directory when it has one.
#include <CLI/CLI.hpp>

#include <string>

#include "dualtune/data/dataset.h"
#include "dualtune/data/transforms.h"

namespace dualtune::cli {

struct DataOptions {
  std::string config;  ///< take data: from this config
  std::string format, root, split, classes;
  int64_t limit = 0;
  int workers = 2;
  /// Arithmetic of the forward pass: fp32 | bf16 | auto (engine/precision.h: auto is bf16
  /// where the CPU has bf16 instructions, as in training). fp32 by default, as the
  /// config's optim.precision: the same embeddings on every machine unless asked.
  std::string precision = "fp32";
  /// Where the model runs: auto | cpu | cuda (engine/device.h: auto is cuda when libtorch
  /// sees a GPU).
  std::string device = "auto";
};

struct ResolvedData {
  data::DatasetSpec spec;
  data::TransformOptions transform;
  std::string precision;         ///< resolved: fp32 | bf16
  std::string precision_reason;  ///< why (engine::resolve_precision)
  std::string device;            ///< resolved: cpu | cuda
};

void add_data_options(CLI::App& cmd, DataOptions& o);
/// model_path: a run directory supplies the default data section and the transform.
ResolvedData resolve_data_options(const DataOptions& o, const std::string& model_path);
/// o.precision resolved for this machine (fp32 | bf16).
std::string embedding_precision(const DataOptions& o);

}  // namespace dualtune::cli

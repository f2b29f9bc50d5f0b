#include "dualtune/cli/data_options.h"

#include <filesystem>

#include "dualtune/config/config.h"
#include "dualtune/engine/device.h"
#include "dualtune/engine/precision.h"
#include "dualtune/engine/settings.h"
#include "dualtune/util/run_dir.h"

namespace dualtune::cli {

void add_data_options(CLI::App& cmd, DataOptions& o) {
  cmd.add_option("--data-config", o.config, "take the data: section from this config (default: the model's run)");
  cmd.add_option("--format", o.format, "idx | image_folder | market1501");
  cmd.add_option("--root", o.root, "dataset root directory");
  cmd.add_option("--split", o.split, "split: idx train|test, image_folder subfolder, market1501 train|query|gallery "
                                     "(default: the config's test split)");
  cmd.add_option("--classes", o.classes, "class subset: all | 0-4 | 0,2,7 | fraction:0.5 (default: all)");
  cmd.add_option("--limit", o.limit, "use only the first N items")->check(CLI::NonNegativeNumber);
  cmd.add_option("--workers", o.workers, "decoding threads")->check(CLI::NonNegativeNumber);
  cmd.add_option("--precision", o.precision,
                 "forward pass: fp32 (default) | bf16 | auto (bf16 where the CPU has avx512_bf16 or AMX, else fp32)")
      ->check(CLI::IsMember({"auto", "fp32", "bf16"}));
  cmd.add_option("--device", o.device, "where the model runs: auto (cuda when libtorch sees a GPU, else cpu) | cpu | cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
}

std::string embedding_precision(const DataOptions& o) { return engine::resolve_precision(o.precision).name; }

ResolvedData resolve_data_options(const DataOptions& o, const std::string& model_path) {
  config::Config cfg;
  if (!o.config.empty()) cfg = config::Config::load(o.config);
  else if (std::filesystem::exists(RunPaths{model_path}.config())) cfg = config::Config::load(RunPaths{model_path}.config());
  if (!o.format.empty()) cfg.set("data.format=" + o.format);
  if (!o.root.empty()) cfg.set("data.root=" + o.root);
  ResolvedData r;
  r.spec = o.split.empty() ? engine::test_dataset_spec(cfg) : engine::dataset_spec(cfg, o.split);
  r.spec.classes = o.classes.empty() ? "all" : o.classes;
  r.spec.limit = o.limit;
  r.transform = engine::transform_options(cfg, false);
  const auto p = engine::resolve_precision(o.precision);
  r.precision = p.name;
  r.precision_reason = p.reason;
  r.device = engine::resolve_device(o.device).name;
  return r;
}

}  // namespace dualtune::cli

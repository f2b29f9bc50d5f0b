// dualtune train --config X [section.key=value ...] [--resume]
#include <cstdio>

#include "dualtune/cli/commands.h"
#include "dualtune/config/config.h"
#include "dualtune/engine/trainer.h"

namespace dualtune::cli {

void register_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Train a model (plain, or compatible with an old model via compat:/old:)");
  struct Opts {
    std::string config;
    std::vector<std::string> overrides;
    bool resume = false, quiet = false;
  };
  auto opts = std::make_shared<Opts>();
  cmd->add_option("--config,-c", opts->config, "YAML config (may use _BASE_ inheritance)")->required();
  cmd->add_option("overrides", opts->overrides, "overrides section.key=value, applied after the file (e.g. optim.epochs=2)");
  cmd->add_flag("--resume", opts->resume, "continue from the last complete epoch in output_dir");
  cmd->add_flag("--quiet,-q", opts->quiet, "no progress lines (the JSON log is still written)");
  cmd->callback([opts] {
    const auto cfg = config::Config::load(opts->config, opts->overrides);
    const auto r = engine::train(cfg, {opts->resume, opts->quiet});
    std::printf("run directory: %s\n", r.run_dir.c_str());
    if (r.test_accuracy >= 0) std::printf("test top-1 accuracy: %.2f%%\n", 100.0 * r.test_accuracy);
    std::printf("last epoch: %.1f s, %.0f img/s\n", r.epoch_seconds, r.images_per_second);
  });
}

}  // namespace dualtune::cli

// dualtune transform train --old RUN --new RUN -c CONFIG [section.key=value ...]
// dualtune transform apply --transform RUN --features DIR [--side-features DIR] --out DIR
#include <cstdio>

#include "dualtune/cli/commands.h"
#include "dualtune/config/config.h"
#include "dualtune/engine/forward_transform.h"
#include "dualtune/engine/settings.h"
#include "dualtune/util/atomic_file.h"

namespace dualtune::cli {

void register_transform_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "transform", "Forward transformation (FCT): learn h mapping old embeddings into a new model's space, and "
                   "apply it to stored old features (no image, no backbone run)");
  cmd->require_subcommand(1);

  auto* train = cmd->add_subcommand("train", "Fit h on (old, new) embedding pairs of the config's training set");
  struct TrainOpts {
    std::string old_model, new_model, config;
    std::vector<std::string> overrides;
  };
  auto t = std::make_shared<TrainOpts>();
  train->add_option("--old", t->old_model, "old model: run directory or TorchScript file")->required();
  train->add_option("--new", t->new_model, "new model: run directory or TorchScript file")->required();
  train->add_option("--config,-c", t->config,
                    "YAML config: its transform: section, and the data:/augment: of the training set")
      ->required();
  train->add_option("overrides", t->overrides, "overrides section.key=value (e.g. output_dir=runs/h transform.epochs=10)");
  train->callback([t] {
    const auto cfg = config::Config::load(t->config, t->overrides);
    engine::train_transform_run(cfg, t->old_model, t->new_model, [](const std::string& line) {
      std::printf("%s\n", line.c_str());
      std::fflush(stdout);
    });
    std::printf("transform run: %s\n", cfg.get<std::string>("output_dir").c_str());
  });

  auto* apply = cmd->add_subcommand("apply", "Map stored old features into the new space: h(old) feature files");
  struct ApplyOpts {
    std::string transform, features, side, out;
    int threads = 0;
  };
  auto a = std::make_shared<ApplyOpts>();
  apply->add_option("--transform,-t", a->transform, "transform run directory (transform train)")->required();
  apply->add_option("--features,-f", a->features, "old feature directory (features.npy, labels.npy, ...)")->required();
  apply->add_option("--side-features", a->side,
                    "side-information features of the same items (when h was trained with side information)");
  apply->add_option("--out,-o", a->out, "output feature directory")->required();
  apply->add_option("--threads", a->threads, "libtorch threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  apply->callback([a] {
    engine::set_threads(a->threads);
    ensure_writable_dir(a->out);
    auto run = engine::load_transform_run(a->transform);
    const auto old = features::FeatureSet::load(a->features);
    features::FeatureSet side;
    if (!a->side.empty()) side = features::FeatureSet::load(a->side);
    const auto out = engine::transform_features(run, old, a->side.empty() ? nullptr : &side);
    out.save(a->out);
    std::printf("%lld x %lld old features -> %lld x %lld written to %s\n", static_cast<long long>(old.n),
                static_cast<long long>(old.d), static_cast<long long>(out.n), static_cast<long long>(out.d),
                a->out.c_str());
  });
}

}  // namespace dualtune::cli

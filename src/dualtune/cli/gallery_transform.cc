// dualtune transform train --old RUN --new RUN -c CONFIG [section.key=value ...]
// dualtune transform apply --transform RUN --features DIR [--side-features DIR] --out DIR
// dualtune gallery transform DIR --transform RUN [--model NEW] [--version NAME]
#include <cstdio>
#include <filesystem>

#include "dualtune/cli/commands.h"
#include "dualtune/cli/gallery_common.h"
#include "dualtune/config/config.h"
#include "dualtune/engine/settings.h"
#include "dualtune/engine/transform_run.h"
#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"
#include "dualtune/util/run_dir.h"

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
    std::printf("transform run: %s\n", engine::run_settings(cfg).output_dir.c_str());
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

namespace {

/// Refuses an h trained for other models than the gallery's: dims always, and the run
/// directories' config hashes when both h's meta.json and the gallery recorded them.
void check_transform_fits(const engine::TransformRun& run, const gallery::ModelInfo& from, const gallery::ModelInfo& to) {
  const auto& spec = run.h->spec;
  DT_CHECK(spec.side_dim == 0, "gallery transform: h was trained with side information (", spec.side_dim,
           "-d); the gallery stores none. Expected a transform trained without transform.side_info");
  DT_CHECK(spec.old_dim == from.dim && spec.new_dim == to.dim, "gallery transform: h maps ", spec.old_dim, "-d into ",
           spec.new_dim, "-d embeddings; the gallery's deployed model '", from.name, "' is ", from.dim,
           "-d and its rolling-out model '", to.name, "' ", to.dim, "-d");
  for (const auto& [role, m] : {std::pair<std::string, const gallery::ModelInfo*>{"old", &from}, {"new", &to}}) {
    const std::string trained = run.meta.contains(role) ? run.meta[role].value("config_hash", std::string()) : "";
    if (trained.empty() || m->config_hash.empty()) continue;
    DT_CHECK("config:" + trained == m->config_hash, "gallery transform: h was trained with the ", role, " model ",
             run.meta[role].value("path", std::string()), " (config:", trained, "); the gallery's '", m->name,
             "' is ", m->path, " (", m->config_hash, "). Expected h trained between the gallery's models");
  }
}

}  // namespace

void register_gallery_transform(CLI::App& gallery) {
  struct Opts {
    std::string dir, transform;
    gallery::TransformOptions t;
    int threads = 0;
    bool quiet = false;
  };
  auto o = std::make_shared<Opts>();
  auto* c = gallery.add_subcommand(
      "transform", "Map every stored embedding of the deployed model through a forward transformation h (`transform "
                   "train`) into the rolling-out model's space, as version <model>@h: new queries score it until an "
                   "item is backfilled. No image, no backbone run; resumable");
  c->add_option("dir", o->dir, "gallery: a directory, or a postgresql://USER@HOST:PORT/DB URL")->required();
  c->add_option("--transform,-t", o->transform, "transform run directory (transform train)")->required();
  c->add_option("--model,-m", o->t.model, "the model h maps into (default: the rolling-out one)");
  c->add_option("--version", o->t.version, "name of the stored version (default <model>@h)");
  c->add_option("--chunk", o->t.chunk, "vectors mapped and committed per transaction")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  c->add_option("--threads", o->threads, "libtorch threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  c->add_flag("--quiet,-q", o->quiet, "no progress lines");
  c->callback([o] {
    engine::set_threads(o->threads);
    auto run = engine::load_transform_run(o->transform);
    auto g = open_gallery(o->dir);
    gallery::TransformOptions t = o->t;
    const std::string weights = RunPaths{std::filesystem::canonical(o->transform).string()}.transform();
    t.transform = gallery::model_fingerprint(weights) + " " + weights;
    gallery::ModelInfo from, to;
    t.check = [&](const gallery::ModelInfo& f, const gallery::ModelInfo& m) {
      check_transform_fits(run, f, m);
      from = f;
      to = m;
    };
    const auto rep = g->transform(
        t, run.h->spec.old_dim,
        [&run](int64_t n, const float* x) { return engine::apply_forward_transform(run, n, x, nullptr); },
        [o](int64_t done, int64_t total) {
          if (!o->quiet) std::fprintf(stderr, "gallery transform: %lld / %lld\n", static_cast<long long>(done),
                                      static_cast<long long>(total));
        });
    g->flush_caches();
    std::printf("gallery transform: %lld embeddings of '%s' mapped by h into '%s' as version '%s' in %.1f s "
                "(%.0f /s); skipped %lld already backfilled and %lld already transformed\n",
                static_cast<long long>(rep.transformed), from.name.c_str(), to.name.c_str(), rep.version.name.c_str(),
                rep.seconds, rep.seconds > 0 ? double(rep.transformed) / rep.seconds : 0.0,
                static_cast<long long>(rep.backfilled), static_cast<long long>(rep.already));
  });
}

}  // namespace dualtune::cli

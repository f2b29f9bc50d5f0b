// dualtune gallery rollout | rollback: the gated cutover of docs/GALLERY.md. A rollout
// first measures the new model's compatibility on a labelled probe set (two feature
// directories, an eval report, or a dataset split extracted here with both models) and
// refuses a model whose new→old mAP is not above old/old (app/rollout_gate.h); a
// rollback returns the gallery to its deployed model before the cutover.
#include <cstdio>
#include <iostream>

#include "dualtune/app/gallery_status.h"
#include "dualtune/app/rollout_gate.h"
#include "dualtune/cli/gallery_common.h"
#include "dualtune/engine/device.h"
#include "dualtune/engine/extract.h"
#include "dualtune/engine/settings.h"
#include "dualtune/util/error.h"

namespace dualtune::cli {
namespace {

struct RolloutOptions {
  std::shared_ptr<ModelCommandOptions> model;
  std::vector<std::string> probe_features;  ///< OLD_DIR NEW_DIR
  std::string probe_report;
  DataOptions probe_data;  ///< --probe-split and its --probe-format/--probe-root/--probe-limit
  bool force = false;
  int threads = 0;
};

/// The probe split embedded by both models (each with its own run's test transform).
gallery::RolloutGate gate_from_split(const gallery::ModelInfo& deployed, const gallery::ModelRegistration& reg,
                                     const RolloutOptions& o, const app::GateModels& m) {
  DT_CHECK(!deployed.path.empty(), "gallery rollout: --probe-split embeds the probe images with the deployed model '",
           deployed.name, "', but the gallery records no model file for it (its embeddings were imported); expected "
           "--probe-features or --probe-report");
  DT_CHECK(!reg.path.empty(), "gallery rollout: --probe-split needs --model-path of '", reg.name, "'");
  engine::set_threads(o.threads);
  const auto spec = resolve_data_options(o.probe_data, reg.path).spec;
  const auto dataset = data::open_dataset(spec);
  const auto extract = [&](const std::string& path) {
    DataOptions d = o.probe_data;
    d.config = o.model->data_config;
    const auto embed = engine::embedder_for(path, "", embedding_precision(o.probe_data),
                                            engine::resolve_device(o.probe_data.device).name);
    return engine::extract_features(embed, dataset, resolve_data_options(d, path).transform, 256, o.probe_data.workers);
  };
  auto g = app::gate_from_feature_sets(extract(deployed.path), extract(reg.path), m, o.threads);
  g.probe = "split " + spec.format + ":" + spec.root + ":" + spec.split;
  return g;
}

void run_rollout(const RolloutOptions& o) {
  const ModelCommandOptions& mo = *o.model;
  const int probes = (o.probe_features.empty() ? 0 : 1) + (o.probe_report.empty() ? 0 : 1) +
                     (o.probe_data.split.empty() ? 0 : 1);
  DT_CHECK(probes <= 1, "gallery rollout: expected one probe (--probe-features, --probe-report or --probe-split), "
           "found ", probes);
  const auto reg = registration(mo.model, mo.path, mo.dim, mo.data_config);
  auto gal = open_gallery(mo.dir);
  gallery::ModelInfo deployed;
  for (const auto& x : gal->models()) {
    if (x.role == gallery::Role::kDeployed) deployed = x;
    DT_CHECK(x.role != gallery::Role::kRollingOut, "gallery ", gallery::Store::display_name(mo.dir), ": model '",
             x.name, "' is already rolling out; expected at most one model rolling out (roll it back or retire it first)");
  }
  const app::GateModels m{deployed.name, reg.name, deployed.dim, reg.dim};
  gallery::RolloutGate gate;
  if (!o.probe_features.empty()) gate = app::gate_from_features(o.probe_features[0], o.probe_features[1], m, o.threads);
  if (!o.probe_report.empty()) gate = app::gate_from_report(o.probe_report, m);
  if (!o.probe_data.split.empty()) gate = gate_from_split(deployed, reg, o, m);
  app::judge_gate(gate, o.force, m);  // throws when refused: nothing changed
  const auto info = gal->rollout(reg, gate);
  const auto history = gal->history();
  std::printf("model %s (d = %lld) is rolling out in %s\ngate: %s\n", reg.name.c_str(), static_cast<long long>(reg.dim),
              gallery::Store::display_name(mo.dir).c_str(), app::gate_summary(gate).c_str());
  if (!history.empty() && !history.back().note.empty()) std::printf("%s\n", history.back().note.c_str());
  (void)info;
}

void run_rollback(const std::string& dir) {
  auto gal = open_gallery(dir);
  const auto m = gal->rollback();
  const auto history = gal->history();
  std::printf("rolled back %s: %s answers every query again; %s (`gallery rollout` of %s resumes)\n", m.name.c_str(),
              history.back().deployed.c_str(), history.back().note.c_str(), m.name.c_str());
  std::cout << app::gallery_status_text(gal->status(), false);
}

}  // namespace

void add_rollout_command(CLI::App& gallery) {
  auto o = std::make_shared<RolloutOptions>();
  auto* c = gallery.add_subcommand("rollout", "Register a new model as rolling out (its queries search the mixed "
                                              "gallery until a backfill completes), once it passes the compatibility "
                                              "gate: new→old mAP above old/old on a labelled probe set");
  o->model = add_model_options(*c);
  c->add_option("--probe-features", o->probe_features, "OLD_DIR NEW_DIR: the same labelled probe images extracted "
                                                       "by the deployed model and by the new one (`dualtune extract`)")
      ->expected(2);
  c->add_option("--probe-report", o->probe_report, "a `dualtune eval` report (report.json or its directory) of the "
                                                   "two models: its old/old and new→old rows");
  c->add_option("--probe-split", o->probe_data.split, "extract this labelled split with both models here (with "
                                                      "--probe-format/--probe-root, default: the new model's data)");
  c->add_option("--probe-format", o->probe_data.format, "dataset format of --probe-split");
  c->add_option("--probe-root", o->probe_data.root, "dataset root of --probe-split");
  c->add_option("--probe-limit", o->probe_data.limit, "use only the first N images of --probe-split")
      ->check(CLI::NonNegativeNumber);
  c->add_flag("--force", o->force, "roll out even when the gate fails or no probe is given (recorded in the history)");
  c->add_option("--threads", o->threads, "threads for the gate's evaluation (0 = all cores)");
  c->callback([o] { run_rollout(*o); });
}

void add_rollback_command(CLI::App& gallery) {
  auto dir = std::make_shared<std::string>();
  auto* c = gallery.add_subcommand("rollback", "Return the gallery to its deployed model before the cutover: the "
                                               "rolling-out model's queries stop, its backfill stops, its embeddings "
                                               "are kept for a later `gallery rollout` of it");
  c->add_option("dir", *dir, "gallery: a directory, or a postgresql://USER@HOST:PORT/DB URL")->required();
  c->callback([dir] { run_rollback(*dir); });
}

}  // namespace dualtune::cli

#include "dualtune/cli/demo_transition.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "dualtune/cli/gallery_common.h"
#include "dualtune/config/config.h"
#include "dualtune/engine/extract.h"
#include "dualtune/engine/precision.h"
#include "dualtune/engine/settings.h"
#include "dualtune/engine/torch_image_embedder.h"
#include "dualtune/features/feature_set.h"
#include "dualtune/report/backfill_report.h"
#include "dualtune/util/error.h"
#include "dualtune/util/run_dir.h"

namespace fs = std::filesystem;

namespace dualtune::cli {

std::string run_demo_transition(const TransitionInputs& in) {
  const std::string old_run = in.seed_dir + "/" + in.old_name, new_run = in.seed_dir + "/" + in.new_name;
  // A variant's run is <method>@TAG; a gallery model name has no '@'.
  std::string new_model = in.new_name;
  std::replace(new_model.begin(), new_model.end(), '@', '.');
  const auto old_test = features::FeatureSet::load(in.seed_dir + "/features/" + in.old_name);
  const auto new_test = features::FeatureSet::load(in.seed_dir + "/features/" + in.new_name);
  const auto cfg = config::Config::load(RunPaths{old_run}.config(), {"data.root=" + in.data_root});
  // The scenario's own splits (Fashion-MNIST: train / test; open set: the new model's
  // train-new and the unseen test classes).
  const auto new_cfg = config::Config::load(RunPaths{new_run}.config(), {"data.root=" + in.data_root});
  auto test_spec = engine::test_dataset_spec(cfg);
  auto train_spec = engine::dataset_spec(new_cfg);
  train_spec.classes = "all";
  train_spec.limit = in.calibration_images;
  std::printf("== gallery transition: %lld test images, old '%s' -> new '%s'; fits on %lld training images\n",
              static_cast<long long>(old_test.n), in.old_name.c_str(), in.new_name.c_str(),
              static_cast<long long>(in.calibration_images));
  std::fflush(stdout);
  // Calibration and order predictor: training images embedded by both models.
  const auto train_set = data::open_dataset(train_spec);
  const auto tf = engine::transform_options(cfg, false);
  const int workers = engine::loader_options(cfg, false).workers;
  const std::string precision = engine::resolve_precision(in.precision).name;
  const auto old_train = engine::extract_features(engine::embedder_for(old_run, "", precision), train_set, tf, 256, workers);
  const auto new_train = engine::extract_features(engine::embedder_for(new_run, "", precision), train_set, tf, 256, workers);

  const std::vector<std::string> orders{"random", "uncertainty"};
  const std::vector<gallery::Merge> merges{gallery::Merge::kRaw, gallery::Merge::kRank, gallery::Merge::kCalibrated};
  std::vector<gallery::Curve> curves;
  const int steps = 10;
  for (const auto& order : orders) {
    const std::string dir = in.seed_dir + "/gallery" + in.tag + "/" + order;
    fs::remove_all(dir);
    gallery::ModelInfo om, nm;
    om.path = old_run;
    nm.path = new_run;
    DataOptions d;
    d.workers = workers;
    d.precision = precision;
    auto old_emb = gallery_embedder(om, d), new_emb = gallery_embedder(nm, d);
    auto g = gallery::Gallery::create(dir, {in.old_name, old_emb->dim(), old_run, old_emb->fingerprint()});
    const int64_t source = g->add_source(dataset_source_json(test_spec));
    std::vector<gallery::ItemRecord> items;
    for (int64_t i = 0; i < old_test.n; ++i) {
      const int64_t l = old_test.labels[i];
      items.push_back({old_test.paths[i], l < 0 ? "" : old_test.class_names.empty() ? std::to_string(l) : old_test.class_names[l],
                       -1, source});
    }
    g->import_vectors(in.old_name, items, old_test.d, old_test.features.data(), false);
    g->rollout({new_model, new_emb->dim(), new_run, new_emb->fingerprint()});
    const auto fit = g->fit_transition(new_model, old_train.n, old_train.features.data(), new_train.features.data(),
                                       new_train.labels.data());
    if (order == orders.front())
      std::printf("   calibration: new/new logit %.2f·s%+.2f, new->old logit %.2f·s%+.2f; uncertainty predictor "
                  "correlation %.2f (training pairs)\n",
                  fit.cal_new.a, fit.cal_new.b, fit.cal_old.a, fit.cal_old.b, fit.predictor.train_corr);
    std::vector<gallery::Curve> mine(merges.size());
    for (size_t m = 0; m < merges.size(); ++m) {
      mine[m].order = order;
      mine[m].merge = gallery::merge_name(merges[m]);
    }
    // The state after each step is scored once all steps are done, from the stored plan
    // (evaluate_backfill_states): one similarity pass instead of one per step, the same points.
    std::vector<int64_t> backfilled{0};
    gallery::BackfillOptions bo;
    bo.order = order;
    bo.batch_size = (old_test.n + 2 * steps - 1) / (2 * steps);
    bo.max_items = 2 * bo.batch_size;  // two batches per step
    for (int s = 0; s < steps; ++s) {
      const auto rep = g->backfill(bo, *new_emb);
      DT_CHECK(rep.failures.empty(), "demo transition: backfill failed on ", rep.failures.front().first, ": ",
               rep.failures.front().second);
      backfilled.push_back(backfilled.back() + rep.embedded);
      if (rep.finished) break;
    }
    for (const auto& state : g->evaluate_backfill_states(new_model, new_test.n, new_test.features.data(),
                                                         new_test.paths, merges, backfilled, in.threads))
      for (size_t m = 0; m < merges.size(); ++m) mine[m].points.push_back(state[m]);
    std::printf("   %s order: backfilled in %d steps\n", order.c_str(), steps);
    std::fflush(stdout);
    for (auto& c : mine) {
      std::vector<double> f, map, top1;
      for (const auto& p : c.points) f.push_back(p.fraction), map.push_back(p.map), top1.push_back(p.top1);
      c.area_map = gallery::curve_area(f, map);
      c.area_top1 = gallery::curve_area(f, top1);
      for (double x : map) c.worst_map_drop = std::min(c.worst_map_drop, x - map.front());
      curves.push_back(c);
    }
  }
  const std::string title = "Backfill of '" + in.new_name + "' over '" + in.old_name + "' (" +
                            std::to_string(old_test.n) + " test images, measured after each step)";
  const std::string out = in.seed_dir + "/report" + in.tag + "/transition";
  report::write_backfill_curves(curves, title, out, std::cerr);
  return "## Gallery transition\n\n" + title + ". Details: `" + out + "/curve.md`, plot `" + out +
         "/plots/backfill_map.png`.\n\n" + report::backfill_curves_markdown(curves);
}

}  // namespace dualtune::cli

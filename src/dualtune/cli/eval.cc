// `dualtune eval`: compatibility evaluation of feature directories (torch-free; the
// work is in dualtune::app::run_eval so that it is tested in test_core). With
// --model NAME=MODEL the features are first extracted here (torch side).
#include <iostream>
#include <memory>

#include "dualtune/app/run_eval.h"
#include "dualtune/cli/commands.h"
#include "dualtune/cli/data_options.h"
#include "dualtune/engine/device.h"
#include "dualtune/engine/extract.h"
#include "dualtune/engine/settings.h"
#include "dualtune/util/error.h"

namespace dualtune::cli {

void register_eval_command(CLI::App& app) {
  auto opt = std::make_shared<app::EvalCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "eval", "Self-test, cross-test and mixed-gallery evaluation of feature directories; writes a report "
              "(report.json, report.md, plots) and prints the summary tables");
  cmd->add_option("--features", opt->features,
                  "NAME=DIR of a feature directory (features.npy, labels.npy, ...) or NAME=FILE.npz (np.savez of "
                  "features, labels[, cams]), one per model, repeatable; "
                  "for --protocol reid: NAME=QUERY_DIR,GALLERY_DIR")
      ->take_all();
  auto models = std::make_shared<std::vector<std::string>>();
  auto data = std::make_shared<DataOptions>();
  cmd->add_option("--model", *models,
                  "NAME=MODEL (run directory), repeatable: extract features of the dataset "
                  "given by the data options into OUT/features/NAME first, then evaluate them")
      ->take_all();
  add_data_options(*cmd, *data);
  cmd->add_option("--old", opt->old_model, "Name of the deployed (old) model; default: the first --features");
  cmd->add_option("--protocol", opt->protocol,
                  "loo: leave-one-out over one split; reid: query/gallery splits, same id + same camera excluded")
      ->check(CLI::IsMember({"loo", "reid"}))
      ->capture_default_str();
  cmd->add_option("--out", opt->out_dir, "Output directory of the report")->required();
  cmd->add_option("--max-block-mb", opt->max_block_mb,
                  "Upper bound (MiB) on the similarity block held in memory (query rows x gallery)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--seed", opt->seed, "Seed of the permutation choosing which gallery items stay old")
      ->capture_default_str();
  cmd->add_option("--mixed", opt->mixed, "Comma-separated fractions of gallery items that keep old features")
      ->capture_default_str();
  cmd->add_option("--threads", opt->threads, "OpenMP/OpenBLAS threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--upgrade", opt->upgrades,
                  "NEW:OLD or NEW:OLD:GALLERY, repeatable: judge these upgrades instead of every model against --old; "
                  "GALLERY names features standing for OLD's gallery, e.g. h(old) from `transform apply`")
      ->take_all();
  cmd->add_option("--lineage", opt->lineage,
                  "v1,v2,v3 (oldest first): judge every (newer, older) pair and galleries holding several generations");
  cmd->add_option("--topk", opt->topk,
                  "If > 0, also write each case's top-k neighbours (FAISS exact search) to OUT/topk/*.npy")
      ->capture_default_str();
  cmd->add_flag("--diagnose", opt->diagnose,
                "Also write per-class diagnostics of every upgrade (diagnostics.json / .md, loo only): AP and top-1 "
                "per class, margins of the new embeddings in the old space, alignment of class means");
  cmd->add_option("--seen-classes", opt->seen_classes,
                  "With --diagnose: class map JSON, or the old model's run directory, naming the classes the old "
                  "model was trained on (groups 'seen' / 'unseen')");
  cmd->callback([opt, models, data]() {
    DT_CHECK(!opt->features.empty() || !models->empty(), "eval needs --features NAME=DIR or --model NAME=MODEL");
    if (!models->empty()) engine::set_threads(opt->threads);
    for (const auto& spec : *models) {
      const auto eq = spec.find('=');
      DT_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < spec.size(), "--model expects NAME=MODEL, got '", spec,
               "'");
      const std::string name = spec.substr(0, eq), model = spec.substr(eq + 1);
      const auto embed = engine::embedder_for(model, "", embedding_precision(*data), engine::resolve_device(data->device).name);
      auto extract = [&](const std::string& split, const std::string& dir) {
        DataOptions d = *data;
        if (!split.empty()) d.split = split;
        const auto resolved = resolve_data_options(d, model);
        std::cout << "extracting " << name << " (" << model << ") on " << resolved.spec.root << " split "
                  << resolved.spec.split << std::endl;
        engine::extract_features(embed, data::open_dataset(resolved.spec), resolved.transform, 256, d.workers)
            .save(dir);
        return dir;
      };
      const std::string base = opt->out_dir + "/features/" + name;
      if (opt->protocol == "reid") {
        opt->features.push_back(name + "=" + extract("query", base + "/query") + "," + extract("gallery", base + "/gallery"));
      } else {
        opt->features.push_back(name + "=" + extract("", base));
      }
    }
    app::run_eval(*opt, std::cout);
  });
}

}  // namespace dualtune::cli

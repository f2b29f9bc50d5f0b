// `dualtune eval`: compatibility evaluation of feature directories (torch-free; the
// work is in dualtune::eval::run_eval so that it is tested in test_core).
#include <iostream>
#include <memory>

#include "dualtune/cli/commands.h"
#include "dualtune/eval/run_eval.h"

namespace dualtune::cli {

void register_eval_command(CLI::App& app) {
  auto opt = std::make_shared<eval::EvalCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "eval", "Self-test, cross-test and mixed-gallery evaluation of feature directories; writes a report "
              "(report.json, report.md, plots) and prints the summary tables");
  cmd->add_option("--features", opt->features,
                  "NAME=DIR of a feature directory (features.npy, labels.npy, ...), one per model, repeatable; "
                  "for --protocol reid: NAME=QUERY_DIR,GALLERY_DIR")
      ->required()
      ->take_all();
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
  cmd->add_option("--topk", opt->topk,
                  "If > 0, also write each case's top-k neighbours (FAISS exact search) to OUT/topk/*.npy")
      ->capture_default_str();
  cmd->callback([opt]() { eval::run_eval(*opt, std::cout); });
}

}  // namespace dualtune::cli

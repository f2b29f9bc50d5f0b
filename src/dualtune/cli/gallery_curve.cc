// dualtune gallery curve: the backfill curve (mAP and top-1 of new-model queries against
// the fraction backfilled) for several orders and merges, from a gallery whose items
// have both models' embeddings (after a backfill, or with the new features imported).
// The work is in app/gallery_curve.h (torch-free).
#include <iostream>
#include <sstream>

#include "dualtune/app/gallery_curve.h"
#include "dualtune/cli/gallery_common.h"

namespace dualtune::cli {
namespace {

std::vector<std::string> split_csv(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string x;
  while (std::getline(ss, x, ','))
    if (!x.empty()) out.push_back(x);
  return out;
}

}  // namespace

void add_curve_command(CLI::App& gallery) {
  auto o = std::make_shared<app::CurveCommandOptions>();
  auto orders = std::make_shared<std::string>(), merges = std::make_shared<std::string>();
  auto* c = gallery.add_subcommand("curve", "Backfill curve: mAP and top-1 of new-model queries as the backfilled "
                                            "fraction goes 0 -> 1 in each order, per merge, and the area under it");
  c->add_option("dir", o->dir, "gallery: a directory, or a postgresql://USER@HOST:PORT/DB URL")->required();
  c->add_option("--model,-m", o->model, "the new model (default: the rolling-out one)");
  c->add_option("--orders", *orders, "comma-separated: plan (the stored backfill order), random, uncertainty, "
                                     "oracle (default: all that are available)");
  c->add_option("--merges", *merges, "comma-separated: raw, rank, aligned, calibrated (default: all that are available)");
  c->add_option("--fractions", o->fractions, "fractions backfilled: steps:N or a list 0,0.25,...")->capture_default_str();
  c->add_option("--seed", o->seed, "seed of the random order");
  c->add_option("--queries", o->queries, "labelled query features of the new model (default: leave-one-out over the "
                                         "gallery's own items)");
  c->add_option("--out", o->out, "output directory for curve.json, curve.md and the plot (default: DIR/curve)");
  c->add_option("--threads", o->threads, "threads (0 = all cores)");
  c->callback([o, orders, merges] {
    o->orders = split_csv(*orders);
    o->merges = split_csv(*merges);
    app::run_curve_command(*o, std::cout, std::cerr);
  });
}

}  // namespace dualtune::cli

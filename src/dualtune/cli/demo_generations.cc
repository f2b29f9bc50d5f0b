// dualtune demo --scenario generations: three generations on Fashion-MNIST, and the
// ways to keep the first one searchable when the third ships.
//   v1  convnet-s on classes 0-3            (the first deployed model)
//   v2  convnet-m on classes 0-6, compatible with v1 (bct or dual-tuning)
//   v3  resnet18 (D 256) on all 10 classes, by strategy:
//       chain     compatible with v2 only (v1 reachable through v2, if at all)
//       multi     compatible with v1 and v2 at once (old: a list, terms summed)
//       transform trained independently; v1's stored embeddings mapped into v3's
//                 space by a forward transformation h fitted on training pairs (FCT)
// For each method and strategy: the 3 × 3 cross matrix (report per strategy), every
// (newer, older) pair judged, and galleries holding several generations at once.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>

#include "dualtune/cli/demo_runs.h"
#include "dualtune/config/config.h"
#include "dualtune/engine/settings.h"
#include "dualtune/engine/transform_run.h"
#include "dualtune/report/report.h"
#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"
#include "dualtune/util/install_paths.h"
#include "dualtune/util/run_dir.h"

namespace fs = std::filesystem;

namespace dualtune::cli {
namespace {

// One strategy's numbers over seeds, in [0, 1]; `compatible` counts pairs × seeds.
struct GenRow {
  std::map<std::string, std::vector<double>> map, top1;  // per column
  int compatible = 0, pairs = 0;
};

const char* const kColumns[] = {"v2→v1", "v3→v2", "v3→v1", "v3/v3", "v1+v2+v3", "v1+v2"};

// The (v1, v2, v3) lineage of one strategy evaluated: matrix, pairs, generation galleries.
void evaluate_lineage(std::vector<eval::ModelFeatures> models, const eval::EvalOptions& base,
                      const std::string& report_dir, GenRow& row) {
  eval::EvalOptions eo = base;
  eo.upgrades = eval::lineage_upgrades({"v1", "v2", "v3"});
  eo.generation_mixes = eval::lineage_mixes({"v1", "v2", "v3"});
  const auto rep = eval::evaluate_compatibility(models, "v1", eo);
  report::write_report(rep, report_dir);
  for (const auto& up : rep.upgrades) {
    const std::string col = up.new_model + "→" + up.old_model;
    row.map[col].push_back(up.new_old.map);
    row.top1[col].push_back(up.new_old.rank1);
    row.compatible += up.map.compatible;
    ++row.pairs;
    if (col == "v3→v1") {
      row.map["v3/v3"].push_back(up.new_new.map);
      row.top1["v3/v3"].push_back(up.new_new.rank1);
    }
  }
  // lineage_mixes: every generation in equal shares, then all but the newest.
  for (size_t i = 0; i < rep.generation_mixes.size() && i < 2; ++i) {
    const char* col = i == 0 ? "v1+v2+v3" : "v1+v2";
    row.map[col].push_back(rep.generation_mixes[i].metrics.map);
    row.top1[col].push_back(rep.generation_mixes[i].metrics.rank1);
  }
}

eval::ModelFeatures renamed(eval::ModelFeatures m, const std::string& name) {
  m.name = name;
  return m;
}

// Fits h: v1 -> v3 (transform.yml), unless run_dir holds a finished fit of the same
// config between the same two models.
void fit_transform(const std::string& config, std::vector<std::string> overrides, const std::string& run_dir,
                   const std::string& v1, const std::string& v3, bool fresh) {
  overrides.push_back("output_dir=" + run_dir);
  const auto cfg = config::Config::load(config, overrides);
  const auto meta = read_meta(run_dir);
  auto hash_of = [](const std::string& run) { return read_meta(run).value("config_hash", std::string()); };
  if (!fresh && meta.value("config_hash", std::string()) == cfg.hash() && meta.contains("old") &&
      meta["old"].value("config_hash", std::string()) == hash_of(v1) &&
      meta["new"].value("config_hash", std::string()) == hash_of(v3) && fs::exists(RunPaths{run_dir}.transform())) {
    std::printf("== reusing %s (finished, same config hash %s)\n", run_dir.c_str(), cfg.hash().c_str());
    return;
  }
  std::printf("== fitting the forward transformation %s\n", run_dir.c_str());
  std::fflush(stdout);
  engine::train_transform_run(cfg, v1, v3, [](const std::string& line) {
    std::printf("   %s\n", line.c_str());
    std::fflush(stdout);
  });
}

std::string cell(const GenRow& r, const std::string& col) {
  const auto m = r.map.find(col);
  if (m == r.map.end()) return "—";
  return mean_pm(m->second) + " / " + mean_pm(r.top1.at(col));
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}

}  // namespace

int run_generations_demo(DemoOptions o) {
  const auto t0 = std::chrono::steady_clock::now();
  if (o.configs.empty()) o.configs = require_shipped_dir("configs") + "/generations";
  DT_CHECK(fs::is_directory(o.configs), "demo: configs directory ", o.configs, " does not exist");
  if (o.data_root.empty()) o.data_root = kFashionMnistDir;
  if (o.methods == DemoOptions{}.methods) o.methods = {"bct", "dual-tuning"};
  for (const auto& m : o.methods) {
    DT_CHECK(m == "bct" || m == "dual-tuning", "demo --scenario generations: unknown method '", m,
             "': expected bct or dual-tuning (the compatible step of each generation)");
  }
  std::printf("== configs: %s\n", o.configs.c_str());
  engine::set_threads(o.threads);
  ensure_writable_dir(o.out);
  const std::string out = fs::absolute(o.out).string() + "/generations";
  auto [v1_ov, later_ov] = budget_overrides(o, 6000, 12000);
  const int64_t eval_limit = o.eval_limit > 0 ? o.eval_limit : (o.quick ? 3000 : 0);

  // Every training of every seed first (side by side), then transforms and evaluation.
  std::vector<Training> trainings;
  auto seed_dir = [&](int s) { return out + "/seed" + std::to_string(s); };
  for (int s = o.first_seed; s < o.first_seed + o.seeds; ++s) {
    auto seeded = [&](std::vector<std::string> v) {
      v.push_back("seed=" + std::to_string(s));
      return v;
    };
    const std::string sdir = seed_dir(s), v1 = sdir + "/v1";
    auto v1_plan = plan_run(o.configs + "/v1.yml", seeded(v1_ov), v1, "", o.fresh);
    const int v1_index = schedule(v1_plan, -1, trainings);
    auto ind = plan_run(o.configs + "/v3.yml", seeded(later_ov), sdir + "/v3_independent", "", o.fresh);
    schedule(ind, -1, trainings);
    for (const auto& m : o.methods) {
      auto ov = seeded(later_ov);
      const std::string v2 = sdir + "/v2_" + m;
      ov.push_back("old.path=" + v1);
      // A retrained predecessor makes its successors stale.
      auto v2_plan = plan_run(o.configs + "/v2_" + m + ".yml", ov, v2, v1_plan.hash, o.fresh || v1_index >= 0);
      const int v2_index = schedule(v2_plan, v1_index, trainings);
      const bool stale = o.fresh || v1_index >= 0 || v2_index >= 0;
      const int after = v2_index >= 0 ? v2_index : v1_index;
      ov.back() = "old.path=" + v2;
      auto chain = plan_run(o.configs + "/v3_" + m + ".yml", ov, sdir + "/v3_" + m + "_chain", v2_plan.hash, stale);
      schedule(chain, after, trainings);
      ov.back() = "old=[{path: \"" + v1 + "\"}, {path: \"" + v2 + "\"}]";
      auto multi = plan_run(o.configs + "/v3_" + m + ".yml", ov, sdir + "/v3_" + m + "_multi", v1_plan.hash, stale);
      schedule(multi, after, trainings);
    }
  }
  const int jobs = run_trainings(trainings, o);

  std::map<std::string, GenRow> rows;  // strategy label -> numbers
  std::vector<std::string> strategies, report_dirs;
  std::vector<double> v1_self, v1_self_top1;
  for (int s = o.first_seed; s < o.first_seed + o.seeds; ++s) {
    const std::string sdir = seed_dir(s), v1 = sdir + "/v1", v3i = sdir + "/v3_independent";
    auto h_ov = later_ov;
    h_ov.push_back("seed=" + std::to_string(s));
    fit_transform(o.configs + "/transform.yml", h_ov, sdir + "/h_v1_v3", v1, v3i, o.fresh);
    std::vector<std::pair<std::string, std::string>> runs{{"v1", v1}, {"v3_independent", v3i}};
    for (const auto& m : o.methods) {
      runs.emplace_back("v2_" + m, sdir + "/v2_" + m);
      for (const char* st : {"chain", "multi"}) runs.emplace_back("v3_" + m + "_" + st, sdir + "/v3_" + m + "_" + st);
    }
    auto feats = extract_test_features(v1, eval_limit, runs, sdir + "/features", o.precision);
    std::map<std::string, eval::ModelFeatures> by_name;
    for (auto& f : feats) by_name[f.name] = std::move(f);
    auto h = engine::load_transform_run(sdir + "/h_v1_v3");
    auto hv1 = engine::transform_features(h, by_name.at("v1").gallery, nullptr);
    hv1.save(sdir + "/features/h(v1)");

    eval::EvalOptions eo;
    eo.seed = static_cast<uint64_t>(s);
    eo.threads = o.threads;
    for (const auto& m : o.methods) {
      for (const char* st : {"chain", "multi"}) {
        const std::string label = m + ", " + st;
        if (s == o.first_seed) strategies.push_back(label);
        std::printf("== evaluating v1 → v2 → v3 (%s)\n", label.c_str());
        std::fflush(stdout);
        const std::string dir = sdir + "/report_" + m + "_" + st;
        evaluate_lineage({renamed(by_name.at("v1"), "v1"), renamed(by_name.at("v2_" + m), "v2"),
                          renamed(by_name.at("v3_" + m + "_" + st), "v3")},
                         eo, dir, rows[label]);
        report_dirs.push_back(dir);
      }
    }
    // transform: v3 independent; its queries against h(v1), the v1 gallery upgraded
    // through h (and against raw v1, for contrast: the plain cross-test).
    const std::string label = "independent v3, v1 through h";
    if (s == o.first_seed) strategies.push_back(label);
    std::printf("== evaluating v3 → h(v1)\n");
    std::fflush(stdout);
    eval::EvalOptions te = eo;
    te.upgrades = {{"v3", "v1", "h(v1)"}, {"v3", "v1", ""}};
    const auto rep = eval::evaluate_compatibility(
        {renamed(by_name.at("v1"), "v1"), eval::loo_model("h(v1)", std::move(hv1)),
         renamed(by_name.at("v3_independent"), "v3")},
        "v1", te);
    report::write_report(rep, sdir + "/report_transform");
    report_dirs.push_back(sdir + "/report_transform");
    auto& row = rows[label];
    row.map["v3→v1"].push_back(rep.upgrades[0].new_old.map);
    row.top1["v3→v1"].push_back(rep.upgrades[0].new_old.rank1);
    row.map["v3/v3"].push_back(rep.upgrades[0].new_new.map);
    row.top1["v3/v3"].push_back(rep.upgrades[0].new_new.rank1);
    row.compatible += rep.upgrades[0].map.compatible;
    ++row.pairs;
    v1_self.push_back(rep.upgrades[0].old_old.map);
    v1_self_top1.push_back(rep.upgrades[0].old_old.rank1);
  }

  // Which strategy keeps v1 searchable best: the highest mean v3→v1 mAP.
  std::string best;
  for (const auto& st : strategies) {
    if (best.empty() || mean(rows[st].map["v3→v1"]) > mean(rows[best].map["v3→v1"])) best = st;
  }
  std::string table = "| v3 strategy |";
  for (const char* c : kColumns) table += std::string(" ") + c + " |";
  table += " compatible pairs |\n|---|---|---|---|---|---|---|---|\n";
  for (const auto& st : strategies) {
    const auto& r = rows[st];
    table += "| " + st + " |";
    for (const char* c : kColumns) table += " " + cell(r, c) + " |";
    table += " " + std::to_string(r.compatible) + "/" + std::to_string(r.pairs) + " |\n";
  }
  const double minutes = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 60.0;
  char head[1024];
  std::snprintf(head, sizeof head,
                "# dualtune demo (scenario generations, %d seed%s%s)\n\nv1 convnet-s on classes 0-3, v2 convnet-m on "
                "0-6, v3 resnet18 (D 256) on all 10; leave-one-out on the Fashion-MNIST test set%s, mAP / top-1 in %%, "
                "mean ± half-range over seeds. v1/v1: %s / %s. A→B: queries of A against a gallery of B. v1+v2+v3: "
                "v3's queries against items held a third each by v1, v2 and v3; v1+v2: half each, the gallery on "
                "the day v3 ships. Transform row: v3→v1 is v3's queries against h(v1). Compatible pairs: (newer, "
                "older) pairs whose cross-test beats the older model's self-test, over seeds. Wall time %.1f min.",
                o.seeds, o.seeds > 1 ? "s" : "", o.quick ? ", quick" : "",
                eval_limit > 0 ? (" (a seeded subset of " + std::to_string(eval_limit) + " images)").c_str() : "",
                mean_pm(v1_self).c_str(), mean_pm(v1_self_top1).c_str(), minutes);
  const std::string summary = std::string(head) + peak_rss_note(jobs > 1) + "\n\n" + table +
                              "\nv1 stays searchable best with: " + best + " (v3→v1 mAP " +
                              mean_pm(rows[best].map["v3→v1"]) + ").\n";
  const std::string summary_path = out + "/summary.md";
  write_text_atomic(summary_path, summary);
  std::printf("\n%s\nreports: %s", summary.c_str(), report_dirs.front().c_str());
  for (size_t i = 1; i < report_dirs.size(); ++i) std::printf(", %s", report_dirs[i].c_str());
  std::printf("\nsummary: %s\n", summary_path.c_str());
  return 0;
}

}  // namespace dualtune::cli

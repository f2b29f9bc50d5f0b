// dualtune demo: the whole story on Fashion-MNIST (Debian's dataset-fashion-mnist).
// Old model convnet-s on classes 0-4; new models convnet-m on all 10 classes with
// independent / l2 / bct / dual-tuning, same seed and schedule; leave-one-out
// evaluation of every case on the 10k test images; comparison table + report.
// Scenario openset tells the same story on the generated open-set glyph benchmark
// (data/glyph_benchmark.h): old model on train-old, new models on train-new, evaluation
// on test classes neither model saw.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "dualtune/app/run_eval.h"
#include "dualtune/cli/commands.h"
#include "dualtune/cli/demo_runs.h"
#include "dualtune/cli/demo_transition.h"
#include "dualtune/config/config.h"
#include "dualtune/data/glyph_benchmark.h"
#include "dualtune/engine/extract.h"
#include "dualtune/engine/precision.h"
#include "dualtune/engine/settings.h"
#include "dualtune/eval/class_diagnostics.h"
#include "dualtune/eval/evaluate.h"
#include "dualtune/report/diagnostics.h"
#include "dualtune/report/report.h"
#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"
#include "dualtune/util/install_paths.h"

namespace fs = std::filesystem;

namespace dualtune::cli {
namespace {

// What a scenario changes: its configs and data, and overrides of every new model.
struct Scenario {
  const char* configs;    ///< configs/<dir>
  const char* data_root;  ///< default --data-root; nullptr: must be given
  const char* test_set;   ///< what the summary says the evaluation ran on
  std::vector<std::string> new_overrides;
  /// --quick training subsets (old, new). On the glyphs, 20 % of each split: compatible
  /// runs need every new class in the subset (its prototype), and 20 % leaves a class of
  /// 84 images empty with probability 0.8^84 ≈ 7e-9.
  int64_t quick_old = 6000, quick_new = 12000;
};

const std::map<std::string, Scenario>& scenarios() {
  static const std::map<std::string, Scenario> s{
      {"default", {"fmnist", kFashionMnistDir, "the Fashion-MNIST test set", {}}},
      {"arch",
       {"fmnist", kFashionMnistDir, "the Fashion-MNIST test set",
        {"model.backbone=resnet18", "model.embedding_dim=256"}}},
      {"loss",
       {"fmnist", kFashionMnistDir, "the Fashion-MNIST test set",
        {"loss.type=arcface", "loss.label_smoothing=0.0"}}},
      {"openset",
       {"glyphs", nullptr, "the open-set glyph test split (classes neither model trained on)", {}, 8600, 25800}},
  };
  return s;
}

const std::map<std::string, std::string> kMethodConfig{{"independent", "new_convnet_m.yml"},
                                                       {"l2", "new_l2.yml"},
                                                       {"bct", "new_bct.yml"},
                                                       {"dual-tuning", "new_dual_tuning.yml"}};

struct Row {
  std::vector<double> oo_map, oo_r1, nn_map, nn_r1, no_map, no_r1, gain;
  std::vector<double> no_negative, no_positive;  ///< new→old top-1 flip rates against old/old
  int compatible = 0;
};

int run_demo(DemoOptions o) {
  const auto t0 = std::chrono::steady_clock::now();
  if (o.scenario == "generations") return run_generations_demo(o);
  const auto sc = scenarios().find(o.scenario);
  DT_CHECK(sc != scenarios().end(), "unknown scenario '", o.scenario, "': expected default, arch, loss, openset or generations");
  const Scenario& scenario = sc->second;
  if (o.configs.empty()) o.configs = require_shipped_dir("configs") + "/" + scenario.configs;
  DT_CHECK(fs::is_directory(o.configs), "demo: configs directory ", o.configs, " does not exist");
  std::printf("== configs: %s\n", o.configs.c_str());
  if (o.data_root.empty()) {
    DT_CHECK(scenario.data_root, "demo --scenario ", o.scenario, ": expected --data-root DIR, the generated open-set ",
             "glyph benchmark, found none. Generate it with `/usr/bin/python3 ", data::kGlyphGenerator,
             " --out DIR` (about 3 minutes; see ", data::kGlyphGeneratorReadme, ")");
    o.data_root = scenario.data_root;
  }
  if (o.scenario == "openset") {
    const auto b = data::check_glyph_benchmark(o.data_root);
    std::printf("== glyph benchmark %s: train-old %lld classes / %lld images, train-new %lld / %lld, "
                "test %lld / %lld\n",
                o.data_root.c_str(), static_cast<long long>(b.train_old.classes),
                static_cast<long long>(b.train_old.images), static_cast<long long>(b.train_new.classes),
                static_cast<long long>(b.train_new.images), static_cast<long long>(b.test.classes),
                static_cast<long long>(b.test.images));
  }
  engine::set_threads(o.threads);
  ensure_writable_dir(o.out);
  const std::string out = fs::absolute(o.out).string();
  auto [old_ov, new_ov] = budget_overrides(o, scenario.quick_old, scenario.quick_new);
  new_ov.insert(new_ov.end(), scenario.new_overrides.begin(), scenario.new_overrides.end());
  const int64_t eval_limit = o.eval_limit > 0 ? o.eval_limit : (o.quick ? 3000 : 0);

  auto label = [&](const std::string& m) { return o.variant.empty() ? m : m + "@" + o.variant; };
  const std::string tag = o.variant.empty() ? "" : "_" + o.variant;
  std::map<std::string, Row> rows;
  std::vector<std::string> report_dirs;
  std::string transition;
  // Every training of every seed first (side by side when jobs > 1), then evaluation.
  std::vector<Training> trainings;
  std::map<int, std::vector<std::pair<std::string, std::string>>> seed_runs;  // seed -> (name, run dir)
  auto seed_dir = [&](int s) { return out + "/" + o.scenario + "/seed" + std::to_string(s); };
  for (int s = o.first_seed; s < o.first_seed + o.seeds; ++s) {
    auto seeded = [&](std::vector<std::string> v) {
      v.push_back("seed=" + std::to_string(s));
      return v;
    };
    const std::string old_dir = seed_dir(s) + "/old";
    auto old_plan = plan_run(o.configs + "/old_convnet_s.yml", seeded(old_ov), old_dir, "", o.fresh);
    const int old_index = schedule(old_plan, -1, trainings);
    seed_runs[s].emplace_back("old", old_dir);
    for (const auto& m : o.methods) {
      auto it = kMethodConfig.find(m);
      DT_CHECK(it != kMethodConfig.end(), "unknown method '", m, "': expected independent, l2, bct or dual-tuning");
      auto ov = seeded(new_ov);
      const bool compat = m != "independent";
      if (compat) ov.push_back("old.path=" + old_dir);
      const std::string name = label(m), dir = seed_dir(s) + "/" + name;
      // A retrained old model makes every compatible run of its seed stale.
      auto plan = plan_run(o.configs + "/" + it->second, ov, dir, compat ? old_plan.hash : "",
                           o.fresh || (compat && old_index >= 0));
      schedule(plan, compat ? old_index : -1, trainings);
      seed_runs[s].emplace_back(name, dir);
    }
  }
  const int jobs = run_trainings(trainings, o);

  for (int s = o.first_seed; s < o.first_seed + o.seeds; ++s) {
    const std::string sdir = seed_dir(s), old_dir = sdir + "/old";
    const auto& runs = seed_runs[s];
    auto models = extract_test_features(old_dir, eval_limit, runs, sdir + "/features", o.precision);
    std::printf("== evaluating %zu models (%zu × %zu cases + mixed galleries)\n", models.size(), models.size(),
                models.size());
    std::fflush(stdout);
    eval::EvalOptions eo;
    eo.seed = static_cast<uint64_t>(s);
    eo.threads = o.threads;
    eo.keep_case_queries = true;  // the class diagnostics below reuse them
    const auto rep = eval::evaluate_compatibility(models, "old", eo);
    report::write_report(rep, sdir + "/report" + tag);
    // Per-class diagnostics: classes the old model trained on vs not, margins in the old space.
    report::write_diagnostics(eval::diagnose_all(models, "old", app::load_class_names(old_dir), eo, &rep),
                              sdir + "/report" + tag);
    report_dirs.push_back(sdir + "/report" + tag);
    // The gallery transition with the Dual-Tuning model (first seed).
    const std::string dual = label("dual-tuning");
    if (s == o.first_seed && o.transition &&
        std::find(o.methods.begin(), o.methods.end(), "dual-tuning") != o.methods.end()) {
      TransitionInputs ti;
      ti.seed_dir = sdir;
      ti.old_name = "old";
      ti.new_name = dual;
      ti.tag = tag;
      ti.data_root = o.data_root;
      ti.calibration_images = o.quick ? 2000 : 5000;
      ti.threads = o.threads;
      ti.precision = o.precision;
      transition = run_demo_transition(ti);
    }
    for (const auto& up : rep.upgrades) {
      auto& r = rows[up.new_model];
      r.oo_map.push_back(up.old_old.map);
      r.oo_r1.push_back(up.old_old.rank1);
      r.nn_map.push_back(up.new_new.map);
      r.nn_r1.push_back(up.new_new.rank1);
      r.no_map.push_back(up.new_old.map);
      r.no_r1.push_back(up.new_old.rank1);
      r.gain.push_back(up.map.gain);
      r.no_negative.push_back(up.flips_new_old.negative);
      r.no_positive.push_back(up.flips_new_old.positive);
      r.compatible += up.map.compatible;
    }
  }

  // The comparison table (mean ± half-range over seeds), Markdown.
  // Flips: new→old queries whose top-1 broke (−) or was fixed (+) against old/old.
  std::string table =
      "| method | old/old mAP / top-1 | new/new mAP / top-1 | new→old mAP / top-1 | new→old flips − / + | compatible "
      "| gain (mAP) |\n|---|---|---|---|---|---|---|\n";
  for (const auto& m : o.methods) {
    const auto& r = rows[label(m)];
    table += "| " + label(m) + " | " + mean_pm(r.oo_map) + " / " + mean_pm(r.oo_r1) + " | " + mean_pm(r.nn_map) + " / " +
             mean_pm(r.nn_r1) + " | " + mean_pm(r.no_map) + " / " + mean_pm(r.no_r1) + " | " +
             mean_pm(r.no_negative) + " / " + mean_pm(r.no_positive) + " | " + std::to_string(r.compatible) + "/" +
             std::to_string(r.oo_map.size()) + " | " + mean_pm(r.gain, 1.0) + " |\n";
  }
  const double minutes = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 60.0;
  const std::string memory = peak_rss_note(jobs > 1);
  std::string settings;
  for (const auto& ov : o.overrides) settings += " `" + ov + "`";
  char head[768];
  std::snprintf(head, sizeof head,
                "# dualtune demo (scenario %s, %d seed%s%s)\n\nmAP, top-1 and flip rates in %%, leave-one-out on %s%s; "
                "mean ± half-range over seeds. Flips: queries whose new→old top-1 is wrong where old/old was right (−) "
                "or right where it was wrong (+). Wall time %.1f min.",
                o.scenario.c_str(), o.seeds, o.seeds > 1 ? "s" : "", o.quick ? ", quick" : "", scenario.test_set,
                eval_limit > 0 ? (" (a seeded subset of " + std::to_string(eval_limit) + " images)").c_str() : "",
                minutes);
  const auto precision = engine::resolve_precision(o.precision);
  const std::string summary =
      std::string(head) + memory + "\nPrecision of the trainings, the test features and the transition: " +
      precision.name + " (" + precision.reason + ")." +
      (settings.empty() ? "" : "\nNew-model overrides:" + settings) + "\n\n" + table +
      (transition.empty() ? "" : "\n" + transition);
  const std::string summary_path = out + "/" + o.scenario + "/summary" + tag + ".md";
  write_text_atomic(summary_path, summary);
  std::printf("\n%s\nreports: %s", summary.c_str(), report_dirs.front().c_str());
  for (size_t i = 1; i < report_dirs.size(); ++i) std::printf(", %s", report_dirs[i].c_str());
  std::printf("\nsummary: %s\n", summary_path.c_str());
  return 0;
}

}  // namespace

void register_demo_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("demo", "The whole pipeline on Fashion-MNIST: old model on classes 0-4, new models "
                                         "(independent, l2, bct, dual-tuning) on all 10, evaluation and report; "
                                         "--scenario openset: the same on the open-set glyph benchmark; --scenario generations: "
                                         "three generations and the ways to keep v1 searchable");
  auto o = std::make_shared<DemoOptions>();
  cmd->add_option("--out,-o", o->out, "output directory (runs, features, reports)")->capture_default_str();
  const std::string shipped = shipped_dir("configs");
  cmd->add_option("--configs", o->configs,
                  "directory of the demo configs (default: the shipped configs/fmnist, openset: configs/glyphs; "
                  "shipped configs: " + (shipped.empty() ? std::string("not found") : shipped) + ")");
  cmd->add_option("--data-root", o->data_root,
                  std::string("Fashion-MNIST IDX directory (default ") + kFashionMnistDir + "); for openset, required: "
                  "the directory tools/openset/make_glyphs.py generated");
  cmd->add_option("--scenario", o->scenario,
                  "default | arch (new model resnet18, D=256) | loss (new model trained with ArcFace) | openset "
                  "(open-set glyph benchmark: old model on train-old, new on train-new, test classes unseen) | generations "
                  "(v1 -> v2 -> v3 on classes 0-3, 0-6, all; v3 chained, against both, or independent with v1 "
                  "transformed forward)")
      ->capture_default_str()
      ->check(CLI::IsMember({"default", "arch", "loss", "openset", "generations"}));
  cmd->add_option("--methods", o->methods, "new-model methods to train")->capture_default_str()->delimiter(',');
  cmd->add_option("--seeds", o->seeds, "number of seeds (mean and spread are reported)")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--first-seed", o->first_seed, "first seed")->capture_default_str();
  cmd->add_flag("--quick", o->quick, "a first look: fewer epochs, training and test subsets");
  cmd->add_flag("--fresh", o->fresh, "retrain even when a finished run with the same config exists");
  cmd->add_flag("--no-transition", [o](int64_t) { o->transition = false; },
                "skip the closing gallery transition (ablations, reruns of a seed whose transition exists; "
                "experiments/transition_curve.sh measures it from the stored features)");
  cmd->add_option("--threads", o->threads, "libtorch threads in all (0 = all cores)")->capture_default_str();
  cmd->add_option("--jobs,-j", o->jobs,
                  "trainings run side by side as child processes, each with threads/jobs threads "
                  "(0 = auto: 4, or 1 on one core; 1 = one after the other in this process)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--eval-limit", o->eval_limit, "evaluate on the first N test images only (0 = all)");
  cmd->add_option("--train-limit", o->train_limit, "train new models on N images (old: N/2); 0 = all");
  cmd->add_option("--epochs-old", o->epochs_old, "override the old model's epochs");
  cmd->add_option("--epochs-new", o->epochs_new, "override the new models' epochs");
  cmd->add_option("--precision", o->precision,
                  "optim.precision of every training: auto (bf16 where the CPU has avx512_bf16 or AMX, else fp32), "
                  "fp32 or bf16")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "fp32", "bf16"}));
  cmd->add_option("--set", o->overrides, "extra override section.key=value for every new model (repeatable)");
  cmd->add_option("--variant", o->variant,
                  "ablation tag: new runs are named <method>@TAG (with --set overrides) and get their own summary");
  cmd->callback([o] { run_demo(*o); });
}

}  // namespace dualtune::cli

// dualtune demo: the whole story on Fashion-MNIST (Debian's dataset-fashion-mnist).
// Old model convnet-s on classes 0-4; new models convnet-m on all 10 classes with
// independent / l2 / bct / dual-tuning, same seed and schedule; leave-one-out
// evaluation of every case on the 10k test images; comparison table + report.
// Scenario openset tells the same story on the generated open-set glyph benchmark
// (data/glyph_benchmark.h): old model on train-old, new models on train-new, evaluation
// on test classes neither model saw.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <thread>

#include "dualtune/cli/commands.h"
#include "dualtune/cli/demo_transition.h"
#include "dualtune/cli/subprocess.h"
#include "dualtune/config/config.h"
#include "dualtune/data/glyph_benchmark.h"
#include "dualtune/engine/extract.h"
#include "dualtune/engine/run_dir.h"
#include "dualtune/engine/settings.h"
#include "dualtune/engine/trainer.h"
#include "dualtune/eval/evaluate.h"
#include "dualtune/report/report.h"
#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"
#include "dualtune/util/install_paths.h"

namespace fs = std::filesystem;

namespace dualtune::cli {
namespace {

struct DemoOptions {
  std::string out = "demo_out";
  std::string configs;    ///< empty: the scenario's configs/<dir> among the shipped configs (util/install_paths.h)
  std::string data_root;  ///< empty: the scenario's default (none for openset)
  std::string scenario = "default";
  std::vector<std::string> methods{"independent", "l2", "bct", "dual-tuning"};
  int seeds = 1;
  int first_seed = 0;
  bool quick = false, fresh = false;
  int threads = 0;
  int jobs = 0;  ///< trainings side by side (0 = auto)
  int64_t eval_limit = 0;
  int64_t train_limit = 0;
  int64_t epochs_old = 0, epochs_new = 0;
  std::vector<std::string> overrides;  ///< applied to every new model
  std::string variant;                 ///< ablation tag: runs "<method>@<variant>", own summary
};

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
      {"default", {"fmnist", "/usr/share/datasets/fashion-mnist", "the Fashion-MNIST test set", {}}},
      {"arch",
       {"fmnist", "/usr/share/datasets/fashion-mnist", "the Fashion-MNIST test set",
        {"model.backbone=resnet18", "model.embedding_dim=256"}}},
      {"loss",
       {"fmnist", "/usr/share/datasets/fashion-mnist", "the Fashion-MNIST test set",
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

using Clock = std::chrono::steady_clock;

// One training the demo needs. `after` is the index of the training that must finish
// first (the old model, for compatible runs), -1 if none.
struct Training {
  std::string config, run_dir;
  std::vector<std::string> overrides;  ///< with output_dir
  bool resume = false;
  int after = -1;
};

// What to do for one run directory: `training` is empty when run_dir holds a finished
// run of this config (and, for a compatible run, of this old model: `old_hash`, the old
// run's config hash). An interrupted run of the same config continues after its last
// complete epoch. Runs written before meta.json recorded old_config_hash are taken as
// matching. `hash` is the resolved config's hash.
struct Plan {
  std::string hash;
  std::optional<Training> training;
};

Plan plan_run(const std::string& config_path, std::vector<std::string> overrides, const std::string& run_dir,
              const std::string& old_hash, bool fresh) {
  overrides.push_back("output_dir=" + run_dir);
  const auto cfg = config::Config::load(config_path, overrides);
  Plan plan{cfg.hash(), std::nullopt};
  const auto meta = engine::read_meta(run_dir);
  const bool same = meta.value("config_hash", std::string()) == plan.hash &&
                    (old_hash.empty() || meta.value("old_config_hash", old_hash) == old_hash);
  if (!fresh && same && engine::run_is_complete(run_dir, plan.hash)) {
    std::printf("== reusing %s (finished, same config hash %s)\n", run_dir.c_str(), plan.hash.c_str());
    return plan;
  }
  Training t{config_path, run_dir, overrides};
  t.resume = !fresh && same && meta.value("epochs_done", 0) > 0 && fs::exists(engine::RunPaths{run_dir}.checkpoint());
  plan.training = std::move(t);
  return plan;
}

std::string minutes_since(Clock::time_point t) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f min", std::chrono::duration<double>(Clock::now() - t).count() / 60.0);
  return buf;
}

// Runs the trainings: one after the other in this process (jobs <= 1), or up to `jobs`
// at once as `dualtune train` child processes with `threads_per_job` threads each. A
// failed training stops the others (SIGTERM; each keeps its last complete epoch and
// resumes on the next run) and the demo fails naming it.
void run_trainings(const std::vector<Training>& ts, int jobs, int threads_per_job) {
  auto announce = [](const Training& t, const std::string& how) {
    std::printf("== %s %s%s\n", t.resume ? "resuming" : "training", t.run_dir.c_str(), how.c_str());
    std::fflush(stdout);
  };
  if (jobs <= 1) {
    for (const auto& t : ts) {
      announce(t, "");
      engine::TrainOptions options;
      options.resume = t.resume;
      engine::train(config::Config::load(t.config, t.overrides), options);
    }
    return;
  }
  const auto env = environment_without({"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"});
  std::vector<int> state(ts.size(), 0);  // 0 waiting, 1 running, 2 done
  std::map<pid_t, size_t> running;
  std::map<size_t, Clock::time_point> started;
  std::string failure;
  size_t done = 0;
  while (done < ts.size() && failure.empty()) {
    for (size_t i = 0; i < ts.size() && static_cast<int>(running.size()) < jobs; ++i) {
      if (state[i] != 0 || (ts[i].after >= 0 && state[static_cast<size_t>(ts[i].after)] != 2)) continue;
      std::vector<std::string> args{"dualtune", "train", "-c", ts[i].config};
      args.insert(args.end(), ts[i].overrides.begin(), ts[i].overrides.end());
      args.push_back("threads=" + std::to_string(threads_per_job));
      if (ts[i].resume) args.push_back("--resume");
      std::fflush(stdout);
      const pid_t pid = spawn_self(args, env);
      announce(ts[i], " (process " + std::to_string(pid) + ", " + std::to_string(threads_per_job) + " thread" +
                          (threads_per_job > 1 ? "s" : "") + ")");
      running[pid] = i;
      started[i] = Clock::now();
      state[i] = 1;
    }
    DT_CHECK(!running.empty(), "demo: no training can start (internal scheduling error)");
    int st = 0;
    const pid_t pid = ::waitpid(-1, &st, 0);
    if (pid < 0 && errno == EINTR) continue;
    DT_CHECK(pid > 0, "demo: waitpid failed: ", std::strerror(errno));
    const auto it = running.find(pid);
    if (it == running.end()) continue;
    const size_t i = it->second;
    running.erase(it);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
      state[i] = 2;
      ++done;
      std::printf("== finished %s in %s\n", ts[i].run_dir.c_str(), minutes_since(started[i]).c_str());
      std::fflush(stdout);
    } else {
      failure = "training of " + ts[i].run_dir + " " + describe_status(st);
    }
  }
  if (failure.empty()) return;
  for (const auto& [pid, i] : running) ::kill(pid, SIGTERM);
  for (const auto& [pid, i] : running) {
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
  }
  DT_THROW("demo: ", failure, " (its error is printed above; its run directory keeps the last complete epoch)",
           running.empty() ? "" : "; the other trainings were stopped and resume on the next run");
}

struct Row {
  std::vector<double> oo_map, oo_r1, nn_map, nn_r1, no_map, no_r1, gain;
  std::vector<double> no_negative, no_positive;  ///< new→old top-1 flip rates against old/old
  int compatible = 0;
};

// mean ± half-range over seeds; rates are printed in %, ratios (scale 1) with 2 decimals.
std::string mean_pm(const std::vector<double>& v, double scale = 100.0) {
  double m = 0;
  for (double x : v) m += x;
  m /= static_cast<double>(v.size());
  const char* f1 = scale == 1.0 ? "%.2f" : "%.1f";
  const char* f2 = scale == 1.0 ? "%.2f ± %.2f" : "%.1f ± %.1f";
  char buf[48];
  if (v.size() == 1) {
    std::snprintf(buf, sizeof buf, f1, scale * m);
  } else {
    double lo = v[0], hi = v[0];
    for (double x : v) lo = std::min(lo, x), hi = std::max(hi, x);
    std::snprintf(buf, sizeof buf, f2, scale * m, scale * (hi - lo) / 2);
  }
  return buf;
}

int run_demo(DemoOptions o) {
  const auto t0 = Clock::now();
  const auto sc = scenarios().find(o.scenario);
  DT_CHECK(sc != scenarios().end(), "unknown scenario '", o.scenario, "': expected default, arch, loss or openset");
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
  std::vector<std::string> common{"data.root=" + o.data_root};
  if (o.threads > 0) common.push_back("threads=" + std::to_string(o.threads));
  std::vector<std::string> old_ov = common, new_ov = common;
  if (o.quick) {
    old_ov.insert(old_ov.end(), {"data.limit=" + std::to_string(scenario.quick_old), "optim.epochs=2"});
    new_ov.insert(new_ov.end(), {"data.limit=" + std::to_string(scenario.quick_new), "optim.epochs=1"});
  }
  if (o.train_limit > 0) {
    old_ov.push_back("data.limit=" + std::to_string(o.train_limit / 2));
    new_ov.push_back("data.limit=" + std::to_string(o.train_limit));
  }
  if (o.epochs_old > 0) old_ov.push_back("optim.epochs=" + std::to_string(o.epochs_old));
  if (o.epochs_new > 0) new_ov.push_back("optim.epochs=" + std::to_string(o.epochs_new));
  new_ov.insert(new_ov.end(), scenario.new_overrides.begin(), scenario.new_overrides.end());
  new_ov.insert(new_ov.end(), o.overrides.begin(), o.overrides.end());
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
    const auto old_plan = plan_run(o.configs + "/old_convnet_s.yml", seeded(old_ov), old_dir, "", o.fresh);
    int old_index = -1;
    if (old_plan.training) {
      old_index = static_cast<int>(trainings.size());
      trainings.push_back(*old_plan.training);
    }
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
      if (plan.training) {
        plan.training->after = compat ? old_index : -1;
        trainings.push_back(*plan.training);
      }
      seed_runs[s].emplace_back(name, dir);
    }
  }
  const int total_threads = o.threads > 0 ? o.threads : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const int jobs = std::max(1, std::min(o.jobs > 0 ? o.jobs : std::min(total_threads, 4),
                                        static_cast<int>(trainings.size())));
  run_trainings(trainings, jobs, std::max(1, total_threads / jobs));

  for (int s = o.first_seed; s < o.first_seed + o.seeds; ++s) {
    const std::string sdir = seed_dir(s), old_dir = sdir + "/old";
    const auto& runs = seed_runs[s];
    std::printf("== extracting test features (leave-one-out on %s test images)\n",
                eval_limit > 0 ? std::to_string(eval_limit).c_str() : "all");
    std::fflush(stdout);
    const auto cfg = config::Config::load(old_dir + "/config.yml");
    auto spec = engine::dataset_spec(cfg, cfg.get<std::string>("data.test_split"));
    spec.classes = "all";
    spec.limit = eval_limit;
    const auto test_set = data::open_dataset(spec);
    std::vector<eval::ModelFeatures> models;
    for (const auto& [name, dir] : runs) {
      auto feats = engine::extract_features(engine::embedder_for(dir), test_set, engine::transform_options(cfg, false),
                                            256, cfg.get<int>("data.workers"));
      feats.save(sdir + "/features/" + name);
      models.push_back(eval::loo_model(name, std::move(feats)));
    }
    std::printf("== evaluating %zu models (%zu × %zu cases + mixed galleries)\n", models.size(), models.size(),
                models.size());
    std::fflush(stdout);
    eval::EvalOptions eo;
    eo.seed = static_cast<uint64_t>(s);
    eo.threads = o.threads;
    const auto rep = eval::evaluate_compatibility(models, "old", eo);
    report::write_report(rep, sdir + "/report" + tag);
    report_dirs.push_back(sdir + "/report" + tag);
    // The gallery transition with the Dual-Tuning model (first seed).
    const std::string dual = label("dual-tuning");
    if (s == o.first_seed &&
        std::find(o.methods.begin(), o.methods.end(), "dual-tuning") != o.methods.end()) {
      TransitionInputs ti;
      ti.seed_dir = sdir;
      ti.old_name = "old";
      ti.new_name = dual;
      ti.data_root = o.data_root;
      ti.calibration_images = o.quick ? 2000 : 5000;
      ti.threads = o.threads;
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
  const double minutes = std::chrono::duration<double>(Clock::now() - t0).count() / 60.0;
  // Peak resident memory (ru_maxrss, KiB): this process and the largest training child
  // (when trainings ran as children: jobs > 1).
  rusage self{}, children{};
  ::getrusage(RUSAGE_SELF, &self);
  ::getrusage(RUSAGE_CHILDREN, &children);
  std::string memory = " Peak RSS: demo process " + std::to_string(self.ru_maxrss / 1024) + " MiB";
  if (jobs > 1) memory += ", largest training process " + std::to_string(children.ru_maxrss / 1024) + " MiB";
  memory += ".";
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
  const std::string summary =
      std::string(head) + memory + (settings.empty() ? "" : "\nNew-model overrides:" + settings) + "\n\n" + table +
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
                                         "--scenario openset: the same on the open-set glyph benchmark");
  auto o = std::make_shared<DemoOptions>();
  cmd->add_option("--out,-o", o->out, "output directory (runs, features, reports)")->capture_default_str();
  const std::string shipped = shipped_dir("configs");
  cmd->add_option("--configs", o->configs,
                  "directory of the demo configs (default: the shipped configs/fmnist, openset: configs/glyphs; "
                  "shipped configs: " + (shipped.empty() ? std::string("not found") : shipped) + ")");
  cmd->add_option("--data-root", o->data_root,
                  "Fashion-MNIST IDX directory (default /usr/share/datasets/fashion-mnist); for openset, required: "
                  "the directory make_hangul.py generated");
  cmd->add_option("--scenario", o->scenario,
                  "default | arch (new model resnet18, D=256) | loss (new model trained with ArcFace) | openset "
                  "(open-set glyph benchmark: old model on train-old, new on train-new, test classes unseen)")
      ->capture_default_str()
      ->check(CLI::IsMember({"default", "arch", "loss", "openset"}));
  cmd->add_option("--methods", o->methods, "new-model methods to train")->capture_default_str()->delimiter(',');
  cmd->add_option("--seeds", o->seeds, "number of seeds (mean and spread are reported)")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--first-seed", o->first_seed, "first seed")->capture_default_str();
  cmd->add_flag("--quick", o->quick, "a first look: fewer epochs, training and test subsets");
  cmd->add_flag("--fresh", o->fresh, "retrain even when a finished run with the same config exists");
  cmd->add_option("--threads", o->threads, "libtorch threads in all (0 = all cores)")->capture_default_str();
  cmd->add_option("--jobs,-j", o->jobs,
                  "trainings run side by side as child processes, each with threads/jobs threads "
                  "(0 = auto: min(threads, 4); 1 = one after the other in this process)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--eval-limit", o->eval_limit, "evaluate on the first N test images only (0 = all)");
  cmd->add_option("--train-limit", o->train_limit, "train new models on N images (old: N/2); 0 = all");
  cmd->add_option("--epochs-old", o->epochs_old, "override the old model's epochs");
  cmd->add_option("--epochs-new", o->epochs_new, "override the new models' epochs");
  cmd->add_option("--set", o->overrides, "extra override section.key=value for every new model (repeatable)");
  cmd->add_option("--variant", o->variant,
                  "ablation tag: new runs are named <method>@TAG (with --set overrides) and get their own summary");
  cmd->callback([o] { run_demo(*o); });
}

}  // namespace dualtune::cli

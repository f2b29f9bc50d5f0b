#include "dualtune/cli/demo_runs.h"

#include <sys/resource.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <thread>

#include "dualtune/cli/subprocess.h"
#include "dualtune/config/config.h"
#include "dualtune/engine/extract.h"
#include "dualtune/engine/precision.h"
#include "dualtune/engine/settings.h"
#include "dualtune/engine/trainer.h"
#include "dualtune/util/error.h"
#include "dualtune/util/run_dir.h"

namespace fs = std::filesystem;

namespace dualtune::cli {
namespace {

using Clock = std::chrono::steady_clock;

std::string minutes_since(Clock::time_point t) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f min", std::chrono::duration<double>(Clock::now() - t).count() / 60.0);
  return buf;
}

}  // namespace

std::pair<std::vector<std::string>, std::vector<std::string>> budget_overrides(const DemoOptions& o,
                                                                               int64_t quick_old,
                                                                               int64_t quick_new) {
  std::vector<std::string> common{"data.root=" + o.data_root};
  if (o.threads > 0) common.push_back("threads=" + std::to_string(o.threads));
  // fp32 leaves the config hash as it was (a neutral value), so fp32 runs stay reusable.
  common.push_back("optim.precision=" + o.precision);
  std::vector<std::string> old_ov = common, new_ov = common;
  if (o.quick) {
    old_ov.insert(old_ov.end(), {"data.limit=" + std::to_string(quick_old), "optim.epochs=2"});
    new_ov.insert(new_ov.end(), {"data.limit=" + std::to_string(quick_new), "optim.epochs=1"});
  }
  if (o.train_limit > 0) {
    old_ov.push_back("data.limit=" + std::to_string(o.train_limit / 2));
    new_ov.push_back("data.limit=" + std::to_string(o.train_limit));
  }
  if (o.epochs_old > 0) old_ov.push_back("optim.epochs=" + std::to_string(o.epochs_old));
  if (o.epochs_new > 0) new_ov.push_back("optim.epochs=" + std::to_string(o.epochs_new));
  new_ov.insert(new_ov.end(), o.overrides.begin(), o.overrides.end());
  return {old_ov, new_ov};
}

Plan plan_run(const std::string& config_path, std::vector<std::string> overrides, const std::string& run_dir,
              const std::string& old_hash, bool fresh) {
  overrides.push_back("output_dir=" + run_dir);
  const auto cfg = config::Config::load(config_path, overrides);
  Plan plan{cfg.hash(), std::nullopt};
  const auto meta = read_meta(run_dir);
  const bool same = meta.value("config_hash", std::string()) == plan.hash &&
                    (old_hash.empty() || meta.value("old_config_hash", old_hash) == old_hash);
  if (!fresh && same && run_is_complete(run_dir, plan.hash)) {
    std::printf("== reusing %s (finished, same config hash %s)\n", run_dir.c_str(), plan.hash.c_str());
    return plan;
  }
  Training t{config_path, run_dir, overrides};
  t.resume = !fresh && same && meta.value("epochs_done", 0) > 0 && fs::exists(RunPaths{run_dir}.checkpoint());
  plan.training = std::move(t);
  return plan;
}

int schedule(Plan& plan, int after, std::vector<Training>& trainings) {
  if (!plan.training) return -1;
  plan.training->after = after;
  trainings.push_back(*plan.training);
  return static_cast<int>(trainings.size()) - 1;
}

int run_trainings(const std::vector<Training>& ts, const DemoOptions& o) {
  const int total_threads =
      o.threads > 0 ? o.threads : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  // Auto: 4 side by side (1 thread each below 8 threads) on more than one core. On 2 cores
  // that is 2 per core: the old model must precede three trainings, so 2 slots leave a
  // core idle for the last ~2 minutes, while 4 time-share both cores to the end (the bf16
  // demo 11.8 -> 11.0 min on 2 cores). Each training's own thread count, hence its
  // numbers, is the same either way.
  const int jobs =
      std::max(1, std::min(o.jobs > 0 ? o.jobs : (total_threads > 1 ? 4 : 1), static_cast<int>(ts.size())));
  const int threads_per_job = std::max(1, total_threads / jobs);
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
    return jobs;
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
    const pid_t pid = wait_child(-1, &st);
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
  if (failure.empty()) return jobs;
  std::vector<pid_t> others;
  for (const auto& [pid, i] : running) others.push_back(pid);
  stop_children(others, std::chrono::seconds(5));
  DT_THROW("demo: ", failure, " (its error is printed above; its run directory keeps the last complete epoch)",
           running.empty() ? "" : "; the other trainings were stopped and resume on the next run");
}

std::vector<eval::ModelFeatures> extract_test_features(const std::string& reference_run, int64_t eval_limit,
                                                       const std::vector<std::pair<std::string, std::string>>& runs,
                                                       const std::string& features_dir, const std::string& precision) {
  std::printf("== extracting test features (leave-one-out on %s test images)\n",
              eval_limit > 0 ? std::to_string(eval_limit).c_str() : "all");
  std::fflush(stdout);
  const auto cfg = config::Config::load(RunPaths{reference_run}.config());
  auto spec = engine::test_dataset_spec(cfg);
  spec.classes = "all";
  spec.limit = eval_limit;
  const auto test_set = data::open_dataset(spec);
  std::vector<eval::ModelFeatures> models;
  for (const auto& [name, dir] : runs) {
    auto feats = engine::extract_features(engine::embedder_for(dir, "", engine::resolve_precision(precision).name),
                                          test_set, engine::transform_options(cfg, false), 256,
                                          engine::loader_options(cfg, false).workers);
    feats.save(features_dir + "/" + name);
    models.push_back(eval::loo_model(name, std::move(feats)));
  }
  return models;
}

std::string mean_pm(const std::vector<double>& v, double scale) {
  if (v.empty()) return "—";
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

std::string peak_rss_note(bool children) {
  // ru_maxrss is in KiB: this process and the largest child (trainings run as children).
  rusage self{}, kids{};
  ::getrusage(RUSAGE_SELF, &self);
  ::getrusage(RUSAGE_CHILDREN, &kids);
  std::string memory = " Peak RSS: demo process " + std::to_string(self.ru_maxrss / 1024) + " MiB";
  if (children) memory += ", largest training process " + std::to_string(kids.ru_maxrss / 1024) + " MiB";
  return memory + ".";
}

}  // namespace dualtune::cli

// dualtune train --config X [section.key=value ...] [--resume] [--nproc N]
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>

#include "dualtune/cli/commands.h"
#include "dualtune/cli/subprocess.h"
#include "dualtune/config/config.h"
#include "dualtune/engine/settings.h"
#include "dualtune/engine/trainer.h"
#include "dualtune/util/error.h"

namespace dualtune::cli {
namespace {

// Starts `nproc` ranks of this binary on 127.0.0.1 with the torchrun environment
// (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE) and waits.
// The first rank to fail stops the others (SIGTERM, SIGKILL after 5 s); the error names
// it. Children die with the launcher (PR_SET_PDEATHSIG).
void run_local_ranks(int nproc, const std::vector<std::string>& args) {
  DT_CHECK(std::getenv("RANK") == nullptr && std::getenv("WORLD_SIZE") == nullptr,
           "--nproc starts its own ranks: expected RANK/WORLD_SIZE unset in the environment, found them set");
  const int port = free_local_port();
  std::vector<pid_t> pids(static_cast<size_t>(nproc), -1);
  for (int r = 0; r < nproc; ++r) pids[static_cast<size_t>(r)] = spawn_self(args, local_rank_environment(r, nproc, port));
  int running = nproc;
  std::string failure;
  while (running > 0) {
    int st = 0;
    const pid_t pid = wait_child(-1, &st);
    if (pid < 0) break;
    const auto it = std::find(pids.begin(), pids.end(), pid);
    if (it == pids.end()) continue;
    const int r = static_cast<int>(it - pids.begin());
    *it = -1;
    --running;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) continue;
    failure = "rank " + std::to_string(r) + " of " + std::to_string(nproc) + " " + describe_status(st);
    break;
  }
  if (failure.empty()) return;
  // Stop the others: SIGTERM, then SIGKILL whoever is still there after 5 s.
  std::string others;
  stop_children(pids, std::chrono::seconds(5), [&](size_t r, int st) {
    others += "; rank " + std::to_string(r) + " " + describe_status(st);
  });
  DT_THROW("train --nproc ", nproc, ": ", failure, " (the first to fail; any error it printed is above)", others,
           "; the run directory keeps the last complete epoch");
}

}  // namespace

void register_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Train a model (plain, or compatible with an old model via compat:/old:)");
  struct Opts {
    std::string config;
    std::vector<std::string> overrides;
    bool resume = false, quiet = false;
    int nproc = 0;
  };
  auto opts = std::make_shared<Opts>();
  cmd->add_option("--config,-c", opts->config, "YAML config (may use _BASE_ inheritance)")->required();
  cmd->add_option("overrides", opts->overrides, "overrides section.key=value, applied after the file (e.g. optim.epochs=2)");
  cmd->add_flag("--resume", opts->resume, "continue from the last complete epoch in output_dir");
  cmd->add_flag("--quiet,-q", opts->quiet, "no progress lines (the JSON log is still written)");
  cmd->add_option("--nproc", opts->nproc,
                  "start N data-parallel ranks on this machine (c10d Gloo on 127.0.0.1); for several machines "
                  "set MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE instead (docs/DISTRIBUTED.md)")
      ->check(CLI::Range(1, 1024));
  cmd->callback([opts] {
    if (opts->nproc > 1) {
      const auto cfg = config::Config::load(opts->config, opts->overrides);  // a bad config fails here, once
      const auto loader = engine::loader_options(cfg, true);
      const auto batch = loader.batch_size;
      DT_CHECK(loader.sampler != "random" || batch % opts->nproc == 0, "optim.batch_size ",
               batch, " must be divisible by --nproc ", opts->nproc,
               " (each rank takes an equal part of the global batch)");
      std::vector<std::string> args{"dualtune", "train", "-c", opts->config};
      for (const auto& o : opts->overrides) args.push_back(o);
      if (opts->resume) args.push_back("--resume");
      if (opts->quiet) args.push_back("--quiet");
      run_local_ranks(opts->nproc, args);
      return;
    }
    const auto cfg = config::Config::load(opts->config, opts->overrides);
    const auto r = engine::train(cfg, {opts->resume, opts->quiet});
    if (const char* rank = std::getenv("RANK"); rank && std::string(rank) != "0") return;  // rank 0 reports
    std::printf("run directory: %s\n", r.run_dir.c_str());
    if (r.test_accuracy >= 0) std::printf("test top-1 accuracy: %.2f%%\n", 100.0 * r.test_accuracy);
    std::printf("last epoch: %.1f s, %.0f img/s\n", r.epoch_seconds, r.images_per_second);
  });
}

}  // namespace dualtune::cli

// Data-parallel training on c10d Gloo (engine/distributed.h), driven through the CLI:
//   - 2 ranks on 127.0.0.1 (`train --nproc 2`; a built-in or a TorchScript backbone) end with the parameters of one process that
//     accumulates the gradients of the same two half-batches (the exact single-process
//     equivalent: BatchNorm statistics are per rank, as in DDP);
//   - SIGKILL of one rank makes the other exit non-zero with a clear error, quickly;
//   - prototypes computed on 2 ranks (sharded + all-reduced) equal the single-process ones.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "dualtune/config/config.h"
#include "dualtune/data/loader.h"
#include "dualtune/engine/checkpoint.h"
#include "dualtune/engine/distributed.h"
#include "dualtune/engine/fused_adam.h"
#include "dualtune/engine/objective.h"
#include "dualtune/engine/schedule.h"
#include "dualtune/engine/settings.h"
#include "dualtune/features/npy.h"
#include "dualtune/models/embedding_model.h"
#include "dualtune/util/atomic_file.h"
#include "dualtune/util/run_dir.h"
#include "tiny_data.h"

extern char** environ;

using namespace dualtune;

namespace {


int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// Starts `dualtune train args...` as rank `rank` of 2 with stdout+stderr to `out_file`.
pid_t spawn_rank(int rank, int port, const std::vector<std::string>& args, const std::string& out_file) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.push_back(*e);
  env.push_back("MASTER_ADDR=127.0.0.1");
  env.push_back("MASTER_PORT=" + std::to_string(port));
  env.push_back("RANK=" + std::to_string(rank));
  env.push_back("WORLD_SIZE=2");
  env.push_back("DUALTUNE_DIST_TIMEOUT=10");
  std::vector<std::string> a{DUALTUNE_BINARY, "train"};
  a.insert(a.end(), args.begin(), args.end());
  std::vector<char*> envp, argv;
  for (auto& s : env) envp.push_back(s.data());
  for (auto& s : a) argv.push_back(s.data());
  envp.push_back(nullptr);
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execve(DUALTUNE_BINARY, argv.data(), envp.data());
    ::_exit(127);
  }
  return pid;
}

class DistributedTraining : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir = testdata::temp_dir("distributed");
    testdata::write_tiny_idx(dir + "/data", 160, 64, 8);
    // Deterministic transforms (no flip, no crop padding, no erasing): the reference below
    // feeds exactly the tensors the ranks saw.
    std::ofstream(dir + "/cfg.yml") << "data:\n  root: " << dir << "/data\n  workers: 0\n"
                                    << "model:\n  embedding_dim: 16\n"
                                    << "optim:\n  epochs: 1\n  batch_size: 32\n"
                                    << "augment:\n  flip: false\n  pad: 0\n  erasing: 0.0\n"
                                    << "seed: 11\nthreads: 1\nlog_every: 1\ntest_accuracy: false\n";
  }
  static std::string dir;
};
std::string DistributedTraining::dir;

}  // namespace

// Two ranks × 16 items per step, 5 steps, vs one process that, per step, runs forward and
// backward on rank 0's 16 items and then on rank 1's 16 items (the sampler's split),
// halves the summed gradients and steps. Gradient accumulation in the test, not a product
// option: the product code stays a plain loop, and the reference shares only the public
// building blocks (dataset, loader, model, objective, schedule) with the trainer.
// Both optimizers: SGD's step is proportional to the gradient, so it would expose a missing
// or double division by the world size that Adam's scale invariance hides.
class TwoRanks : public DistributedTraining, public ::testing::WithParamInterface<std::string> {};

TEST_P(TwoRanks, EqualOneProcessAccumulatingTheirHalfBatches) {
  // "adam", "sgd", or "adam-torchscript": a user's scripted module as the backbone (the
  // fixture feature_map.pt: BatchNorm, no dropout, so both sides see the same forward).
  const std::string param = GetParam();
  const std::string optim = param.substr(0, param.find('-'));
  std::vector<std::string> backbone;
  if (param.find("-torchscript") != std::string::npos) {
    const char* env = std::getenv("DUALTUNE_TORCHSCRIPT_FIXTURES");
    const std::string module = std::string(env && *env ? env : DUALTUNE_TORCHSCRIPT_FIXTURES) + "/feature_map.pt";
    ASSERT_TRUE(std::filesystem::exists(module)) << module << ": run `ctest -R fixtures.torchscript_models`";
    backbone = {"model.backbone=torchscript", "model.path=" + module};
  }
  std::string backbone_args;
  for (const auto& b : backbone) backbone_args += " " + b;
  const std::string out_dir = dir + "/two_ranks_" + param;
  int status = 0;
  const auto out = testdata::run_command(std::string(DUALTUNE_BINARY) + " train -c " + dir + "/cfg.yml output_dir=" + out_dir +
                           " optim.name=" + optim + " optim.lr=0.05" + backbone_args + " --nproc 2",
                       &status);
  ASSERT_EQ(status, 0) << out;
  EXPECT_NE(out.find("2 ranks"), std::string::npos) << out;
  const auto meta = nlohmann::json::parse(testdata::slurp(out_dir + "/meta.json"));
  EXPECT_EQ(meta["world_size"].get<int>(), 2);
  EXPECT_TRUE(meta["complete"].get<bool>());
  // A torchscript run keeps its copy of the user's module (models/torchscript_backbone.h).
  EXPECT_EQ(std::filesystem::exists(out_dir + "/backbone.pt"), !backbone.empty());
  // Resume with another world size is refused.
  const auto bad = testdata::run_command(std::string(DUALTUNE_BINARY) + " train -c " + dir + "/cfg.yml output_dir=" + out_dir +
                           " optim.name=" + optim + " optim.lr=0.05" + backbone_args + " --resume",
                       &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(bad.find("world size 2 but this run has world size 1"), std::string::npos) << bad;

  // Reference: one process, the same seed, initial weights and items.
  std::vector<std::string> overrides{"output_dir=" + dir + "/reference_" + param, "optim.name=" + optim, "optim.lr=0.05"};
  overrides.insert(overrides.end(), backbone.begin(), backbone.end());
  const auto cfg = config::Config::load(dir + "/cfg.yml", overrides);
  torch::set_num_threads(1);
  const auto train_set = data::open_dataset(engine::dataset_spec(cfg));
  const auto seed = static_cast<uint64_t>(cfg.get<int64_t>("seed"));
  torch::manual_seed(seed);
  models::EmbeddingModel model(engine::model_spec(cfg, static_cast<int64_t>(train_set->classes().size())));
  std::vector<torch::Tensor> params;
  for (auto& p : model->parameters())
    if (p.requires_grad()) params.push_back(p);
  const double lr0 = cfg.get<double>("optim.lr"), wd = cfg.get<double>("optim.weight_decay");
  std::unique_ptr<torch::optim::Optimizer> opt_ptr;  // as the trainer's make_optimizer
  if (optim == "sgd")
    opt_ptr = std::make_unique<torch::optim::SGD>(
        params,
        torch::optim::SGDOptions(lr0).momentum(cfg.get<double>("optim.momentum")).weight_decay(wd).nesterov(true));
  else
    // The trainer's FusedAdam: Adam turns the rounding noise of proj.bias's gradient (zero in
    // exact arithmetic: the BatchNorm neck follows) into full steps, so this comparison needs
    // the same float expression; FusedAdam against torch's Adam is test_fused_adam.cc.
    opt_ptr = std::make_unique<engine::FusedAdam>(params, torch::optim::AdamOptions(lr0).weight_decay(wd));
  auto& opt = *opt_ptr;
  engine::Objective objective(engine::objective_options(cfg), train_set, dir + "/reference_" + param,
                              [](const std::string&) {});
  std::vector<std::unique_ptr<data::Loader>> halves;
  for (int r = 0; r < 2; ++r) {
    auto lo = engine::loader_options(cfg, true);
    lo.rank = r;
    lo.world_size = 2;
    lo.batch_size = cfg.get<int64_t>("optim.batch_size") / 2;
    halves.push_back(std::make_unique<data::Loader>(train_set, engine::transform_options(cfg, true), lo));
  }
  const int64_t iters = halves[0]->batches_per_epoch();
  ASSERT_EQ(iters, 5);
  torch::manual_seed(seed * 1000003ull);
  model->train();
  for (auto& l : halves) l->start_epoch(0);
  for (int64_t it = 0; it < iters; ++it) {
    const double lr = engine::learning_rate(cfg.get<std::string>("optim.schedule"), cfg.get<double>("optim.lr"), it,
                                            iters, 0, iters, {}, cfg.get<double>("optim.gamma"));
    for (auto& g : opt.param_groups()) g.options().set_lr(lr);
    opt.zero_grad();
    for (auto& l : halves) {
      data::Batch b;
      ASSERT_TRUE(l->next(b));
      const auto x = torch::from_blob(b.images.data(), {b.n, b.c, b.h, b.w});
      const auto y = torch::from_blob(b.labels.data(), {b.n}, torch::kInt64);
      torch::Tensor total = torch::zeros({});
      for (const auto& t : objective.terms(x, model->forward(x), y, *model)) total = total + t.weight * t.value;
      total.backward();
    }
    {
      torch::NoGradGuard no_grad;
      for (auto& p : params) p.mutable_grad().div_(2);
    }
    opt.step();
  }

  auto two = engine::load_run_model(out_dir);
  const auto got = two->named_parameters();
  const auto want = model->named_parameters();
  ASSERT_EQ(got.size(), want.size());
  double worst = 0;
  for (const auto& kv : want) {
    const auto a = got[kv.key()], b = kv.value().detach();
    const double rel = ((a - b).abs().max() / (b.abs().max() + 1e-12)).item<double>();
    worst = std::max(worst, rel);
    EXPECT_LT(rel, 1e-5) << "parameter " << kv.key();
  }
  std::printf("%s: largest relative parameter difference, 2 ranks vs reference: %.3g\n", param.c_str(), worst);
}

INSTANTIATE_TEST_SUITE_P(Distributed, TwoRanks, ::testing::Values("adam", "sgd"));
// Named TorchScript* so that ctest runs the fixture export first (CMakeLists.txt).
INSTANTIATE_TEST_SUITE_P(TorchScriptDistributed, TwoRanks, ::testing::Values("adam-torchscript"));

TEST_F(DistributedTraining, KilledRankMakesTheOtherFailWithinTheTimeout) {
  testdata::write_tiny_idx(dir + "/data_long", 2000, 64, 8);
  const std::string out_dir = dir + "/killed";
  const std::vector<std::string> args{"-c", dir + "/cfg.yml", "data.root=" + dir + "/data_long",
                                      "output_dir=" + out_dir, "optim.epochs=20"};
  const int port = free_port();
  const pid_t r0 = spawn_rank(0, port, args, dir + "/rank0.txt");
  const pid_t r1 = spawn_rank(1, port, args, dir + "/rank1.txt");
  ASSERT_GT(r0, 0);
  ASSERT_GT(r1, 0);
  // Wait until training runs (rank 0 prints a line per step), then kill rank 1.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  bool training = false;
  while (std::chrono::steady_clock::now() < deadline) {
    if (testdata::slurp(dir + "/rank0.txt").find("step 5/") != std::string::npos) {
      training = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(r1, SIGKILL);
  int st = 0;
  ::waitpid(r1, &st, 0);
  ASSERT_TRUE(training) << testdata::slurp(dir + "/rank0.txt");
  const auto killed_at = std::chrono::steady_clock::now();
  deadline = killed_at + std::chrono::seconds(30);
  bool exited = false;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(r0, &st, WNOHANG) == r0) {
      exited = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!exited) {
    ::kill(r0, SIGKILL);
    ::waitpid(r0, &st, 0);
  }
  const auto out = testdata::slurp(dir + "/rank0.txt");
  ASSERT_TRUE(exited) << "rank 0 still running 30 s after rank 1 was killed\n" << out;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  EXPECT_LT(seconds, 15.0);  // the configured timeout is 10 s; a closed socket is seen at once
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) != 0)
      << (WIFSIGNALED(st) ? "killed by signal " + std::to_string(WTERMSIG(st)) : std::string()) << "\n" << out;
  EXPECT_NE(out.find("dualtune: error: distributed: rank 0 of 2:"), std::string::npos) << out;
  EXPECT_NE(out.find("failed"), std::string::npos) << out;
  std::printf("rank 0 stopped %.2f s after rank 1 was killed\n", seconds);
}

TEST_F(DistributedTraining, ShardedPrototypesEqualSingleProcessOnes) {
  int status = 0;
  const std::string bin = DUALTUNE_BINARY, cfg = " -c " + dir + "/cfg.yml ";
  auto out = testdata::run_command(bin + " train" + cfg + "output_dir=" + dir + "/old data.classes=0-5 --quiet", &status);
  ASSERT_EQ(status, 0) << out;
  const std::string compat = " compat.method=dual-tuning old.path=" + dir + "/old optim.epochs=1 --quiet";
  out = testdata::run_command(bin + " train" + cfg + "output_dir=" + dir + "/proto1" + compat, &status);
  ASSERT_EQ(status, 0) << out;
  out = testdata::run_command(bin + " train" + cfg + "output_dir=" + dir + "/proto2" + compat + " --nproc 2", &status);
  ASSERT_EQ(status, 0) << out;
  const auto a = npy::load(dir + "/proto1/prototypes/prototypes.npy");
  const auto b = npy::load(dir + "/proto2/prototypes/prototypes.npy");
  ASSERT_EQ(a.shape, b.shape);
  ASSERT_EQ(a.shape[0], 8);
  for (size_t i = 0; i < a.f32.size(); ++i) EXPECT_NEAR(a.f32[i], b.f32[i], 1e-6f * (1 + std::abs(a.f32[i]))) << i;
}

// The numbers of docs/DISTRIBUTED.md's cost model: trainable parameters and the bytes a
// ring all-reduce moves per rank and step (float32 gradients, 2(N-1)/N of the buffer).
TEST(DistributedCostModel, GradientBytesPerStep) {
  struct Case {
    const char* name;
    models::ModelSpec spec;
  };
  std::vector<Case> cases(2);
  cases[0].name = "convnet-m, Fashion-MNIST (D 128, 10 classes)";
  cases[0].spec.backbone = "convnet-m";
  cases[1].name = "resnet50, Market-1501 (D 2048, 751 classes)";
  cases[1].spec.backbone = "resnet50";
  cases[1].spec.in_channels = 3;
  cases[1].spec.embedding_dim = 0;
  cases[1].spec.num_classes = 751;
  for (const auto& c : cases) {
    models::EmbeddingModel m(c.spec);
    int64_t n = 0, tensors = 0;
    for (const auto& p : m->parameters())
      if (p.requires_grad()) n += p.numel(), ++tensors;
    const double mb = static_cast<double>(n) * 4 / 1e6;
    std::printf("%s: %lld parameters in %lld tensors, %.1f MB of gradients, %lld bucket(s) of 25 MiB; "
                "ring all-reduce per rank and step: N=2 %.1f MB, N=4 %.1f MB, N=8 %.1f MB\n",
                c.name, static_cast<long long>(n), static_cast<long long>(tensors), mb,
                static_cast<long long>((n * 4 + engine::Distributed::kBucketBytes - 1) /
                                       engine::Distributed::kBucketBytes),
                mb * 2 * 1 / 2, mb * 2 * 3 / 4, mb * 2 * 7 / 8);
    EXPECT_GT(n, 0);
  }
}

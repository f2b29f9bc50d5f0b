// Crash safety of `dualtune train`, driven through the CLI binary:
//   - SIGKILL in the middle of an epoch, then --resume, gives exactly the weights and
//     test accuracy of an uninterrupted run with the same seed (single thread, workers 0);
//   - a NaN/Inf loss stops training with a non-zero exit, a message naming the loss term
//     and the step, and the last good checkpoint left in place (no temporary files);
//   - an output location that cannot be created is a clear error before any training.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "dualtune/engine/checkpoint.h"
#include "dualtune/util/atomic_file.h"
#include "tiny_data.h"

using namespace dualtune;
namespace fs = std::filesystem;

namespace {


int epochs_done(const std::string& run_dir) {
  try {
    const auto meta = nlohmann::json::parse(testdata::slurp(run_dir + "/meta.json"));
    return meta.value("epochs_done", 0);
  } catch (...) {
    return 0;  // absent or (never, it is atomic) half-written
  }
}

// Per-epoch records of train_log.jsonl (those with "images"), keyed by epoch: the last
// record of an epoch wins (a resumed run appends the re-run epoch after the killed one).
std::map<int, nlohmann::json> epoch_records(const std::string& run_dir) {
  std::map<int, nlohmann::json> out;
  std::istringstream is(testdata::slurp(run_dir + "/train_log.jsonl"));
  std::string line;
  while (std::getline(is, line)) {
    if (line.empty()) continue;
    nlohmann::json r;
    try {
      r = nlohmann::json::parse(line);
    } catch (...) {
      continue;  // a line cut by SIGKILL
    }
    if (r.contains("images")) out[r["epoch"].get<int>()] = r;
  }
  return out;
}

bool has_tmp_files(const std::string& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp") != std::string::npos) return true;
  return false;
}

class CrashSafety : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir = testdata::temp_dir("crash");
    testdata::write_tiny_idx(dir + "/data", 600, 120, 8);
    std::ofstream(dir + "/cfg.yml") << "data:\n  root: " << dir << "/data\n  workers: 0\n"
                                    << "model:\n  embedding_dim: 16\n"
                                    << "optim:\n  epochs: 3\n  batch_size: 16\n"
                                    << "augment:\n  erasing: 0.5\n"
                                    << "seed: 7\nthreads: 1\nlog_every: 1\n";
  }
  static std::string train_cmd(const std::string& out, const std::string& extra = "") {
    return std::string(DUALTUNE_BINARY) + " train -c " + dir + "/cfg.yml output_dir=" + out + " " + extra;
  }
  static std::string dir;
};
std::string CrashSafety::dir;

}  // namespace

TEST_F(CrashSafety, KillMidEpochThenResumeMatchesUninterruptedRun) {
  const std::string killed = dir + "/killed", full = dir + "/full";
  const std::string out_file = dir + "/killed_stdout.txt";

  // 1. Start training in the background, stdout (a progress line per step) to a file.
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const int fd = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    const std::string cfg = dir + "/cfg.yml", od = "output_dir=" + killed;
    ::execl(DUALTUNE_BINARY, DUALTUNE_BINARY, "train", "-c", cfg.c_str(), od.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // 2. Wait until epoch 1 is checkpointed and epoch 2 is a few steps in, then SIGKILL.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  bool mid_epoch2 = false, exited = false;
  while (std::chrono::steady_clock::now() < deadline) {
    int st = 0;
    if (::waitpid(pid, &st, WNOHANG) == pid) {
      exited = true;
      break;
    }
    if (epochs_done(killed) >= 1 && testdata::slurp(out_file).find("epoch 2/3 step 5/") != std::string::npos) {
      mid_epoch2 = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!exited) {
    ::kill(pid, SIGKILL);
    int st = 0;
    ::waitpid(pid, &st, 0);
    EXPECT_TRUE(WIFSIGNALED(st));
  }
  ASSERT_TRUE(mid_epoch2) << "training never reached epoch 2 step 5 (exited early: " << exited << ")\n"
                          << testdata::slurp(out_file);
  const int done_at_kill = epochs_done(killed);
  EXPECT_EQ(done_at_kill, 1) << "the kill was meant to land between checkpoints 1 and 2";
  EXPECT_LT(done_at_kill, 3);

  // 3. Resume to completion.
  int status = 0;
  auto out = testdata::run_command(train_cmd(killed, "--resume"), &status);
  ASSERT_EQ(status, 0) << out;
  EXPECT_NE(out.find("resuming after epoch " + std::to_string(done_at_kill)), std::string::npos) << out;
  EXPECT_EQ(epochs_done(killed), 3);
  EXPECT_FALSE(has_tmp_files(killed));

  // 4. The same config uninterrupted.
  out = testdata::run_command(train_cmd(full), &status);
  ASSERT_EQ(status, 0) << out;
  EXPECT_EQ(epochs_done(full), 3);

  // 5. Identical weights (every tensor, buffers included) and outputs on a fixed batch.
  auto a = engine::load_run_model(killed);
  auto b = engine::load_run_model(full);
  const auto pa = a->named_parameters(), pb = b->named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (const auto& kv : pa) EXPECT_TRUE(torch::equal(kv.value(), pb[kv.key()])) << "parameter " << kv.key();
  const auto ba = a->named_buffers(), bb = b->named_buffers();
  ASSERT_EQ(ba.size(), bb.size());
  for (const auto& kv : ba) EXPECT_TRUE(torch::equal(kv.value(), bb[kv.key()])) << "buffer " << kv.key();
  torch::manual_seed(123);
  const auto x = torch::randn({8, 1, 28, 28});
  torch::NoGradGuard no_grad;
  const auto ea = a->forward(x), eb = b->forward(x);
  EXPECT_TRUE(torch::allclose(ea, eb, 0.0, 1e-6)) << (ea - eb).abs().max().item<double>();
  EXPECT_TRUE(torch::equal(a->classifier->forward(ea), b->classifier->forward(eb)));

  // 6. Identical per-epoch metrics, test accuracy included.
  const auto ra = epoch_records(killed), rb = epoch_records(full);
  ASSERT_EQ(ra.size(), 3u);
  ASSERT_EQ(rb.size(), 3u);
  for (int e = 1; e <= 3; ++e) {
    ASSERT_TRUE(ra.at(e).contains("test_top1"));
    EXPECT_EQ(ra.at(e)["test_top1"].get<double>(), rb.at(e)["test_top1"].get<double>()) << "epoch " << e;
    EXPECT_EQ(ra.at(e)["mean_total"].get<double>(), rb.at(e)["mean_total"].get<double>()) << "epoch " << e;
  }
}

TEST_F(CrashSafety, NanLossStopsWithTheTermAndStepAndKeepsTheLastGoodCheckpoint) {
  // Epoch 1 trains normally; from epoch 2 the multistep schedule multiplies lr by 1e30,
  // so the first update of epoch 2 blows the weights up and the next loss is not finite.
  const std::string od = dir + "/nan";
  int status = 0;
  const auto out = testdata::run_command(train_cmd(od, "optim.name=sgd optim.lr=0.01 optim.schedule=multistep "
                                     "'optim.milestones=[1]' optim.gamma=1e30"),
                       &status);
  EXPECT_NE(status, 0) << out;
  EXPECT_NE(out.find("loss term '"), std::string::npos) << out;
  EXPECT_NE(out.find(" at epoch 2 step "), std::string::npos) << out;
  EXPECT_NE(out.find("stopping"), std::string::npos) << out;
  EXPECT_EQ(out.find("epoch 3/3"), std::string::npos) << out;
  // The checkpoint of epoch 1 is intact, loads, and gives finite embeddings.
  EXPECT_EQ(epochs_done(od), 1);
  EXPECT_FALSE(has_tmp_files(od));
  auto m = engine::load_run_model(od);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::isfinite(m->forward(torch::randn({4, 1, 28, 28}))).all().item<bool>());
}

TEST_F(CrashSafety, UncreatableOutputDirIsAClearErrorBeforeTraining) {
  // A regular file where a directory must go: root cannot get around that (chmod would).
  const std::string blocker = dir + "/not_a_dir";
  std::ofstream(blocker) << "x";
  int status = 0;
  const auto out = testdata::run_command(train_cmd(blocker + "/run"), &status);
  EXPECT_NE(status, 0) << out;
  EXPECT_NE(out.find("output directory"), std::string::npos) << out;
  EXPECT_NE(out.find(blocker), std::string::npos) << out;
  EXPECT_EQ(out.find("training set:"), std::string::npos) << "training started: " << out;
  EXPECT_EQ(testdata::slurp(blocker), "x");
}

TEST_F(CrashSafety, ResumeRefusesChangedConfigAndCorruptRunFiles) {
  const std::string od = dir + "/resume_bad";
  int status = 0;
  auto out = testdata::run_command(train_cmd(od, "optim.epochs=1"), &status);
  ASSERT_EQ(status, 0) << out;
  // Another config than the one the run was started with.
  out = testdata::run_command(train_cmd(od, "optim.epochs=2 --resume"), &status);
  EXPECT_NE(status, 0) << out;
  EXPECT_NE(out.find("config differs"), std::string::npos) << out;
  // A truncated checkpoint (e.g. copied by hand) is a clear error naming the file.
  const std::string ckpt = testdata::slurp(od + "/checkpoint.pt");
  std::ofstream(od + "/checkpoint.pt", std::ios::binary | std::ios::trunc) << ckpt.substr(0, ckpt.size() / 2);
  out = testdata::run_command(train_cmd(od, "optim.epochs=1 --resume"), &status);
  EXPECT_NE(status, 0) << out;
  EXPECT_NE(out.find("checkpoint.pt"), std::string::npos) << out;
  EXPECT_EQ(out.find("epoch 1/1"), std::string::npos) << out;
  // An empty checkpoint, too.
  std::ofstream(od + "/checkpoint.pt", std::ios::binary | std::ios::trunc);
  out = testdata::run_command(train_cmd(od, "optim.epochs=1 --resume"), &status);
  EXPECT_NE(status, 0) << out;
  EXPECT_NE(out.find("checkpoint.pt"), std::string::npos) << out;
  // A corrupt meta.json.
  std::ofstream(od + "/meta.json", std::ios::trunc) << "{\"epochs_done\": 1, ";
  out = testdata::run_command(train_cmd(od, "optim.epochs=1 --resume"), &status);
  EXPECT_NE(status, 0) << out;
  EXPECT_NE(out.find("meta.json"), std::string::npos) << out;
  // --resume without any run.
  out = testdata::run_command(train_cmd(dir + "/resume_none", "--resume"), &status);
  EXPECT_NE(status, 0) << out;
  EXPECT_NE(out.find("no checkpoint"), std::string::npos) << out;
}

TEST_F(CrashSafety, CorruptTorchScriptOldModelIsAClearError) {
  const std::string ts = dir + "/garbage.ts";
  std::ofstream(ts, std::ios::binary) << "PK\x03\x04 this is not a TorchScript archive";
  std::ofstream(dir + "/old_classes.json") << "{\"classes\": [\"0\", \"1\"]}";
  int status = 0;
  const auto out = testdata::run_command(train_cmd(dir + "/ts_bad", "compat.method=l2 old.path=" + ts + " old.class_map=" + dir +
                                                      "/old_classes.json"),
                       &status);
  EXPECT_NE(status, 0) << out;
  EXPECT_NE(out.find("garbage.ts"), std::string::npos) << out;
  EXPECT_EQ(out.find("epoch 1/"), std::string::npos) << out;
}

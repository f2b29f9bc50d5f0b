// device: cpu | cuda | auto. Only the CPU exists here: resolution (auto -> cpu, cuda ->
// an error naming the fix, before any training step), the record in meta.json, and a
// CPU run whose numbers do not depend on how the CPU was chosen.
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "dualtune/config/config.h"
#include "dualtune/engine/checkpoint.h"
#include "dualtune/engine/device.h"
#include "dualtune/util/error.h"
#include "tiny_data.h"

namespace fs = std::filesystem;
using namespace dualtune;

namespace {

std::string resolve_error(const std::string& requested, bool cuda) {
  try {
    engine::resolve_device(requested, cuda);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Device, ResolutionFollowsTheRequestAndWhatLibtorchSees) {
  EXPECT_TRUE(engine::resolve_device("cpu", true).device.is_cpu());
  EXPECT_EQ(engine::resolve_device("cpu", false).name, "cpu");
  EXPECT_TRUE(engine::resolve_device("auto", false).device.is_cpu());
  const auto gpu = engine::resolve_device("auto", true);
  EXPECT_TRUE(gpu.device.is_cuda());
  EXPECT_EQ(gpu.name, "cuda");
  EXPECT_TRUE(engine::resolve_device("cuda", true).device.is_cuda());
  const std::string e = resolve_error("cuda", false);
  EXPECT_NE(e.find("device: cuda asked for, but this libtorch has no CUDA (torch::cuda::is_available() is false)"),
            std::string::npos) << e;
  EXPECT_NE(e.find("-DTorch_DIR="), std::string::npos) << e;
  EXPECT_NE(e.find("set device: cpu"), std::string::npos) << e;
  EXPECT_NE(resolve_error("gpu", true).find("expected one of {cpu, cuda, auto}, found 'gpu'"), std::string::npos);
}

TEST(Device, ThisMachineResolvesAutoToWhatLibtorchReports) {
  // The repository's CI has no GPU and a CPU libtorch: auto is cpu there.
  const bool cuda = torch::cuda::is_available();
  EXPECT_EQ(engine::resolve_device("auto").name, cuda ? "cuda" : "cpu");
}

TEST(Device, ConfigKeyIsValidated) {
  config::Config cfg;
  EXPECT_EQ(cfg.get<std::string>("device"), "auto");
  cfg.set("device=gpu");
  try {
    cfg.validate();
    FAIL() << "device: gpu validated";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("config key 'device': expected one of {cpu, cuda, auto}, found 'gpu'"),
              std::string::npos) << e.what();
  }
}

// cpu and auto (here: cpu) train the same model bit for bit and record the device;
// cuda on this machine stops before any step and writes nothing.
TEST(Device, CpuRunIsUnchangedAndCudaWithoutCudaStopsBeforeTraining) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a CUDA libtorch with a GPU: auto would pick cuda";
  const std::string dir = testdata::temp_dir("device");
  testdata::write_tiny_idx(dir + "/data", 96, 16, 4);
  std::ofstream(dir + "/cfg.yml") << "data:\n  root: " << dir << "/data\n  workers: 0\n"
                                  << "model:\n  embedding_dim: 16\noptim:\n  epochs: 1\n  batch_size: 32\n"
                                  << "seed: 5\nthreads: 1\nlog_every: 100\ntest_accuracy: false\n";
  const std::string bin = std::string(DUALTUNE_BINARY) + " train -c " + dir + "/cfg.yml ";
  int status = 0;
  auto out = testdata::run_command(bin + "output_dir=" + dir + "/cpu device=cpu", &status);
  ASSERT_EQ(status, 0) << out;
  out = testdata::run_command(bin + "output_dir=" + dir + "/auto device=auto", &status);
  ASSERT_EQ(status, 0) << out;
  // Same trained weights and BatchNorm statistics, bit for bit.
  auto a = engine::load_run_model(dir + "/cpu"), b = engine::load_run_model(dir + "/auto");
  const auto ta = a->named_parameters(), tb = b->named_parameters();
  ASSERT_EQ(ta.size(), tb.size());
  for (const auto& p : ta) EXPECT_TRUE(torch::equal(p.value(), tb[p.key()])) << p.key();
  const auto ba = a->named_buffers(), bb = b->named_buffers();
  for (const auto& p : ba) EXPECT_TRUE(torch::equal(p.value(), bb[p.key()])) << p.key();
  const auto meta = nlohmann::json::parse(testdata::slurp(dir + "/auto/meta.json"));
  EXPECT_EQ(meta["device"], "cpu");
  EXPECT_EQ(meta["device_reason"], "auto: no CUDA device visible to libtorch");

  out = testdata::run_command(bin + "output_dir=" + dir + "/cuda device=cuda", &status);
  EXPECT_NE(status, 0) << out;
  EXPECT_NE(out.find("device: cuda asked for, but this libtorch has no CUDA"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir + "/cuda/meta.json"));
  EXPECT_FALSE(fs::exists(dir + "/cuda/checkpoint.pt"));

  // Every command that embeds images honours --device: asked for cuda here, each stops
  // with the same error and writes nothing; with cpu, the same command works.
  const std::string B = std::string(DUALTUNE_BINARY) + " ";
  const std::string data = " --format idx --root " + dir + "/data --split test --workers 0";
  out = testdata::run_command(B + "gallery create " + dir + "/g --model m --model-path " + dir + "/cpu", &status);
  ASSERT_EQ(status, 0) << out;
  const std::vector<std::pair<std::string, std::string>> commands{
      {"extract --model " + dir + "/cpu --out " + dir + "/features" + data, dir + "/features"},
      {"eval --model m=" + dir + "/cpu --out " + dir + "/report" + data, dir + "/report"},
      {"gallery add " + dir + "/g" + data, ""},
  };
  for (const auto& [command, output] : commands) {
    out = testdata::run_command(B + command + " --device cuda", &status);
    EXPECT_NE(status, 0) << command << "\n" << out;
    EXPECT_NE(out.find("device: cuda asked for, but this libtorch has no CUDA"), std::string::npos) << command << "\n" << out;
    if (!output.empty()) EXPECT_FALSE(fs::exists(output)) << command;
    out = testdata::run_command(B + command + " --device cpu", &status);
    EXPECT_EQ(status, 0) << command << "\n" << out;
  }
  out = testdata::run_command(B + "gallery status --json " + dir + "/g", &status);
  ASSERT_EQ(status, 0) << out;
  EXPECT_EQ(nlohmann::json::parse(out)["items"], 16) << out;  // the cpu add's 16 test images, none from the cuda one
  fs::remove_all(dir);
}

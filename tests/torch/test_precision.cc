// optim.precision: the bf16 scope casts convolutions and matrix products to bfloat16
// and restores float32 on exit; a bf16 training run learns the tiny classes and
// records its precision; auto runs bf16 exactly where the CPU has bf16 instructions
// (both branches through the DUALTUNE_CPU_BF16 override); any other value is refused;
// the logged test accuracy is the classifier's top-1 in either precision and leaves
// the training as it is.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "dualtune/config/config.h"
#include "dualtune/data/loader.h"
#include "dualtune/engine/checkpoint.h"
#include "dualtune/engine/precision.h"
#include "dualtune/engine/settings.h"
#include "dualtune/engine/trainer.h"
#include "dualtune/util/cpu_features.h"
#include "dualtune/util/error.h"
#include "dualtune/util/run_dir.h"
#include "tiny_data.h"

using namespace dualtune;

TEST(ForwardPrecision, Bf16ScopeCastsConvolutionsAndRestoresFloat) {
  const auto x = torch::randn({2, 1, 8, 8});
  const auto w = torch::randn({4, 1, 3, 3});
  {
    engine::ForwardPrecision fp32("fp32");
    EXPECT_EQ(torch::conv2d(x, w).scalar_type(), torch::kFloat);
  }
  {
    engine::ForwardPrecision bf16("bf16");
    const auto y = torch::conv2d(x, w);
    EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
    // bf16 keeps 8 bits of mantissa: close to the float32 result, not equal to it.
    const auto ref = torch::conv2d(x.to(torch::kDouble), w.to(torch::kDouble));
    EXPECT_LT((y.to(torch::kDouble) - ref).abs().max().item<double>(), 0.05 * ref.abs().max().item<double>());
  }
  EXPECT_EQ(torch::conv2d(x, w).scalar_type(), torch::kFloat);  // restored
  try {
    engine::ForwardPrecision bad("fp16");
    FAIL() << "fp16 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected fp32 or bf16, found 'fp16'"), std::string::npos) << e.what();
  }
}

namespace {

// Sets DUALTUNE_CPU_BF16 for one scope ("" = unset), as if the CPU had (or lacked) bf16.
class CpuBf16Override {
 public:
  explicit CpuBf16Override(const char* value) {
    const char* was = std::getenv("DUALTUNE_CPU_BF16");
    had_ = was != nullptr;
    if (had_) was_ = was;
    if (*value) ::setenv("DUALTUNE_CPU_BF16", value, 1);
    else ::unsetenv("DUALTUNE_CPU_BF16");
  }
  ~CpuBf16Override() {
    if (had_) ::setenv("DUALTUNE_CPU_BF16", was_.c_str(), 1);
    else ::unsetenv("DUALTUNE_CPU_BF16");
  }

 private:
  bool had_ = false;
  std::string was_;
};

}  // namespace

TEST(ForwardPrecision, AutoIsBf16ExactlyWhereTheCpuHasBf16Instructions) {
  {
    CpuBf16Override cpu("1");
    const auto r = engine::resolve_precision("auto");
    EXPECT_EQ(r.name, "bf16");
    EXPECT_NE(r.reason.find("DUALTUNE_CPU_BF16=1"), std::string::npos) << r.reason;
  }
  {
    CpuBf16Override cpu("0");
    const auto r = engine::resolve_precision("auto");
    EXPECT_EQ(r.name, "fp32");
    EXPECT_NE(r.reason.find("no bf16 instructions"), std::string::npos) << r.reason;
  }
  // Explicit values run as asked, whatever the CPU.
  for (const char* cpu_value : {"0", "1"}) {
    CpuBf16Override cpu(cpu_value);
    EXPECT_EQ(engine::resolve_precision("fp32").name, "fp32");
    EXPECT_EQ(engine::resolve_precision("bf16").name, "bf16");
  }
  // Without the override, auto follows this machine's /proc/cpuinfo.
  CpuBf16Override none("");
  EXPECT_EQ(engine::resolve_precision("auto").name, cpu_bf16().fast ? "bf16" : "fp32");
  EXPECT_THROW(engine::resolve_precision("fp16"), Error);
}

// A run with optim.precision: auto records what ran and why in meta.json.
TEST(ForwardPrecision, AutoRunRecordsThePrecisionThatRanAndWhy) {
  const auto dir = testdata::temp_dir("auto");
  testdata::write_tiny_idx(dir + "/data", 64, 16, 4);
  for (const std::string cpu_value : {"0", "1"}) {
    CpuBf16Override cpu(cpu_value.c_str());
    const std::string out = dir + "/cpu" + cpu_value;
    const auto cfg = config::Config::from_string(
        "data:\n  root: " + dir + "/data\n  workers: 0\n  classes: 0-3\nmodel:\n  backbone: convnet-s\n"
        "  embedding_dim: 8\noptim:\n  epochs: 1\n  batch_size: 32\n"
        "test_accuracy: false\nthreads: 1\noutput_dir: " + out + "\n",
        {"optim.precision=auto"});
    EXPECT_EQ(engine::train(cfg, {false, true}).epochs, 1);
    const auto meta = read_meta(out);
    EXPECT_EQ(meta.value("precision", std::string()), cpu_value == "1" ? "bf16" : "fp32");
    EXPECT_NE(meta.value("precision_reason", std::string()).find("auto: "), std::string::npos) << meta.dump();
  }
  std::filesystem::remove_all(dir);
}

TEST(ForwardPrecision, ConfigAcceptsFp32Bf16AndAutoOnly) {
  const auto fp32 = config::Config::from_string("", {});
  EXPECT_EQ(fp32.get<std::string>("optim.precision"), "fp32");  // the default
  EXPECT_EQ(config::Config::from_string("", {"optim.precision=fp32"}).hash(), fp32.hash());
  EXPECT_NE(config::Config::from_string("", {"optim.precision=bf16"}).hash(), fp32.hash());
  EXPECT_NE(config::Config::from_string("", {"optim.precision=auto"}).hash(), fp32.hash());
  try {
    config::Config::from_string("", {"optim.precision=fp16"});
    FAIL() << "fp16 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("optim.precision"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("fp16"), std::string::npos) << e.what();
  }
}

// Two epochs on the tiny classes in each precision: the training loss falls in bf16 as
// it does in fp32 (first step against the mean of the last four, from the JSON log).
TEST(ForwardPrecision, Bf16TrainingLearnsAsFp32Does) {
  const auto dir = testdata::temp_dir("bf16");
  testdata::write_tiny_idx(dir + "/data", 240, 40, 4);
  std::map<std::string, std::pair<double, double>> loss;  // first step, mean of the last four
  for (const std::string precision : {"fp32", "bf16"}) {
    const auto cfg = config::Config::from_string(
        "data:\n  root: " + dir + "/data\n  workers: 1\n  classes: 0-3\nmodel:\n  backbone: convnet-s\n"
        "  embedding_dim: 16\noptim:\n  epochs: 2\n  batch_size: 32\n  lr: 0.003\n"
        "log_every: 1\ntest_accuracy: false\nthreads: 1\noutput_dir: " + dir + "/" + precision + "\n",
        {"optim.precision=" + precision});
    EXPECT_EQ(engine::train(cfg, {false, true}).epochs, 2);
    EXPECT_EQ(read_meta(dir + "/" + precision).value("precision", std::string()), precision);
    std::istringstream log(testdata::slurp(dir + "/" + precision + "/train_log.jsonl"));
    std::vector<double> total;
    for (std::string line; std::getline(log, line);) {
      const auto rec = nlohmann::json::parse(line);
      if (rec.contains("step") && rec.contains("total")) total.push_back(rec["total"]);  // step records
    }
    ASSERT_EQ(total.size(), 16u);  // 2 epochs × 8 steps
    loss[precision] = {total.front(), (total[12] + total[13] + total[14] + total[15]) / 4};
  }
  std::printf("training loss, first step -> mean of the last four: fp32 %.3f -> %.3f, bf16 %.3f -> %.3f\n",
              loss["fp32"].first, loss["fp32"].second, loss["bf16"].first, loss["bf16"].second);
  // ln 4 = 1.386 at chance; 16 small steps bring both down by about a fifth.
  for (const auto& [precision, l] : loss) EXPECT_LT(l.second, 0.9 * l.first) << precision;
  EXPECT_NEAR(loss["bf16"].second, loss["fp32"].second, 0.05);
  std::filesystem::remove_all(dir);
}

namespace {

// A convnet-s run (embedding 16, batch 32, one thread, test accuracy on) on the tiny
// classes 0-3 written to dir/data, into `out`.
config::Config tiny_convnet_run(const std::string& dir, const std::string& out, const std::vector<std::string>& overrides) {
  return config::Config::from_string("data:\n  root: " + dir +
                                         "/data\n  workers: 1\n  classes: 0-3\nmodel:\n  backbone: convnet-s\n"
                                         "  embedding_dim: 16\noptim:\n  batch_size: 32\n"
                                         "test_accuracy: true\nthreads: 1\noutput_dir: " + out + "\n",
                                     overrides);
}

}  // namespace

// The test accuracy a run logs after each epoch is its classifier's top-1 on the test
// split. Recomputed here the plain way, from the checkpoint: the module's forward() in
// eval mode, float32, no folding. The run computes it on the inference path extraction
// uses (BatchNorm folded into the convolutions, in the run's precision, or bf16 autocast
// where oneDNN has no bf16 kernels), whose rounding differs: only test images whose two
// highest float32 logits are within a rounding margin may be classified otherwise (1e-3 of
// the top logit in fp32, 5 % in bf16: 8-bit mantissas). 24 steps of training leave
// the accuracy well above chance and few images that close.
TEST(ForwardPrecision, LoggedTestAccuracyIsTheClassifiersTop1RecomputedFromTheCheckpoint) {
  const auto dir = testdata::temp_dir("testacc");
  const int n_test = 120;
  testdata::write_tiny_idx(dir + "/data", 256, n_test, 4);
  for (const std::string precision : {"fp32", "bf16"}) {
    const std::string out = dir + "/" + precision;
    const auto cfg = tiny_convnet_run(dir, out, {"optim.epochs=3", "optim.lr=0.01", "optim.precision=" + precision});
    const auto result = engine::train(cfg, {false, true});
    double logged = -1;
    std::istringstream log(testdata::slurp(out + "/train_log.jsonl"));
    for (std::string line; std::getline(log, line);) {
      const auto rec = nlohmann::json::parse(line);
      if (rec.contains("test_top1")) logged = rec["test_top1"];
    }
    EXPECT_EQ(logged, result.test_accuracy) << precision;

    auto model = engine::load_run_model(out);
    torch::NoGradGuard no_grad;
    data::LoaderOptions lo;
    lo.shuffle = false;
    lo.workers = 0;
    data::Loader loader(data::open_dataset(engine::test_dataset_spec(cfg)), engine::transform_options(cfg, false), lo);
    loader.start_epoch(0);
    const double rel = precision == "fp32" ? 1e-3 : 0.05;
    int64_t correct = 0, total = 0, close = 0;
    for (data::Batch b; loader.next(b);) {
      const auto x = torch::from_blob(b.images.data(), {b.n, b.c, b.h, b.w});
      const auto logits = model->classifier->forward(model->forward(x));
      const auto top2 = std::get<0>(logits.topk(2, 1));
      for (int64_t i = 0; i < b.n; ++i, ++total) {
        correct += logits[i].argmax().item<int64_t>() == b.labels[i];
        const double l1 = top2[i][0].item<double>(), l2 = top2[i][1].item<double>();
        close += l1 - l2 <= rel * std::max(1.0, std::abs(l1));
      }
    }
    ASSERT_EQ(total, n_test);
    const double plain = static_cast<double>(correct) / static_cast<double>(total);
    std::printf("%s: logged test top-1 %.4f, recomputed %.4f, %lld images within the rounding margin\n",
                precision.c_str(), logged, plain, static_cast<long long>(close));
    EXPECT_GT(plain, 0.3);
    EXPECT_LT(close, n_test / 4) << "the check would say little";
    EXPECT_NEAR(logged, plain, static_cast<double>(close) / n_test + 1e-9) << precision;
  }
  std::filesystem::remove_all(dir);
}

// Measuring test accuracy after each epoch does not touch the training: the same run with
// and without it ends with the same parameters and buffers, bit for bit.
TEST(ForwardPrecision, TestAccuracyLeavesTheTrainingBitForBit) {
  const auto dir = testdata::temp_dir("testacc_same");
  testdata::write_tiny_idx(dir + "/data", 128, 40, 4);
  std::map<std::string, std::vector<torch::Tensor>> state;
  for (const std::string measured : {"true", "false"}) {
    const std::string out = dir + "/" + measured;
    const auto cfg = tiny_convnet_run(dir, out, {"optim.epochs=2", "test_accuracy=" + measured});
    engine::train(cfg, {false, true});
    auto model = engine::load_run_model(out);
    for (const auto& t : model->parameters()) state[measured].push_back(t.detach().clone());
    for (const auto& t : model->buffers()) state[measured].push_back(t.detach().clone());
  }
  ASSERT_EQ(state["true"].size(), state["false"].size());
  for (size_t i = 0; i < state["true"].size(); ++i) EXPECT_TRUE(torch::equal(state["true"][i], state["false"][i])) << i;
  std::filesystem::remove_all(dir);
}

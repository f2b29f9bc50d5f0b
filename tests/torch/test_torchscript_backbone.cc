// model.backbone: torchscript — a network exported from PyTorch, trained by dualtune.
// The modules come from tests/fixtures/torchscript/make_models.py (Debian's
// python3-torch), written by the ctest fixture fixtures.torchscript_models into the
// directory DUALTUNE_TORCHSCRIPT_FIXTURES (the environment variable, else the build
// tree's path CMake passes). The small CNN has BatchNorm and dropout (p = 0.3) and maps
// 1 × 28 × 28 to 32 features.
//   - training changes every parameter and the BatchNorm statistics (num_batches_tracked
//     = the number of steps), which the checkpoint holds by the module's names;
//   - extraction is deterministic, dropout acts in training only;
//   - --resume after a kill at the end of epoch 1 gives the weights of an uninterrupted run;
//   - the run directory, after the user's file is gone, is the old model of a second
//     training (and stays unchanged through it), and extract / eval / gallery take it;
//   - a feature-map output is average-pooled; bf16 autocast reaches the scripted ops;
//   - every refused module is refused before any training step, saying why.
#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "dualtune/config/config.h"
#include "dualtune/engine/checkpoint.h"
#include "dualtune/engine/objective.h"
#include "dualtune/engine/precision.h"
#include "dualtune/engine/settings.h"
#include "dualtune/engine/trainer.h"
#include "dualtune/features/npy.h"
#include "dualtune/models/torchscript_backbone.h"
#include "tiny_data.h"

using namespace dualtune;
namespace fs = std::filesystem;

namespace {

std::string fixture(const std::string& name) {
  const char* env = std::getenv("DUALTUNE_TORCHSCRIPT_FIXTURES");
  return std::string(env && *env ? env : DUALTUNE_TORCHSCRIPT_FIXTURES) + "/" + name;
}

class TorchScriptBackbone : public ::testing::Test {
 protected:
  // data: 240 training images of 8 classes (8 steps of 32), 60 test images.
  // old:  a built-in convnet-s on classes 0-3, the old model of `ts`.
  // ts:   the scripted CNN trained with BCT against `old`, from a copy of the fixture
  //       that is deleted afterwards: everything below uses the run directory alone.
  static void SetUpTestSuite() {
    ASSERT_TRUE(fs::exists(fixture("manifest.txt")))
        << "TorchScript fixtures missing in " << fixture("") << ": run `ctest -R fixtures.torchscript_models` or "
        << "/usr/bin/python3 tests/fixtures/torchscript/make_models.py " << fixture("");
    dir = testdata::temp_dir("torchscript");
    testdata::write_tiny_idx(dir + "/data", 240, 60, 8);
    engine::train(config({"output_dir=" + dir + "/old", "data.classes=0-3"}), {false, true});
    fs::copy_file(fixture("scripted.pt"), dir + "/user_model.pt");
    engine::train(config({"output_dir=" + dir + "/ts", "model.backbone=torchscript",
                          "model.path=" + dir + "/user_model.pt", "compat.method=bct", "old.path=" + dir + "/old"}),
                  {false, true});
    fs::remove(dir + "/user_model.pt");
  }
  static std::string base_yaml() {
    return "data:\n  root: " + dir + "/data\n  workers: 0\nmodel:\n  embedding_dim: 16\n"
           "optim:\n  epochs: 1\n  batch_size: 32\nlog_every: 1000\nthreads: 1\ntest_accuracy: false\n";
  }
  static config::Config config(const std::vector<std::string>& overrides) {
    return config::Config::from_string(base_yaml(), overrides);
  }
  static std::string cli(const std::string& args, int* status) {
    return testdata::run_command(std::string(DUALTUNE_BINARY) + " " + args, status);
  }
  static void ok(const std::string& args) {
    int st = 0;
    const auto out = cli(args, &st);
    ASSERT_EQ(st, 0) << args << "\n" << out;
  }
  static std::string dir;
};
std::string TorchScriptBackbone::dir;

std::map<std::string, torch::Tensor> named_state(torch::nn::Module& m) {
  std::map<std::string, torch::Tensor> s;
  for (const auto& p : m.named_parameters()) s[p.key()] = p.value();
  for (const auto& b : m.named_buffers()) s[b.key()] = b.value();
  return s;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_F(TorchScriptBackbone, TrainingChangesEveryParameterAndTheBatchNormStatistics) {
  auto before = torch::jit::load(fixture("scripted.pt"));
  auto model = engine::load_run_model(dir + "/ts");
  const auto trained = named_state(*model);
  int params = 0, stats = 0;
  for (const auto& p : before.named_parameters()) {
    const auto it = trained.find("backbone." + p.name);
    ASSERT_NE(it, trained.end()) << "checkpoint lacks backbone." << p.name;
    EXPECT_FALSE(torch::equal(it->second.contiguous(), p.value.contiguous())) << p.name << " did not train";
    ++params;
  }
  EXPECT_EQ(params, 9);  // conv1..3 weights (no bias), bn1..3 weight and bias
  for (const auto& b : before.named_buffers()) {
    const auto it = trained.find("backbone." + b.name);
    ASSERT_NE(it, trained.end()) << "checkpoint lacks backbone." << b.name;
    if (b.name.find("num_batches_tracked") != std::string::npos) {
      EXPECT_EQ(b.value.item<int64_t>(), 0);
      EXPECT_EQ(it->second.item<int64_t>(), 8) << b.name << ": one per step, 240 / 32 -> 8 steps";
    } else {
      EXPECT_FALSE(torch::equal(it->second, b.value)) << b.name << " did not update in training";
      ++stats;
    }
  }
  EXPECT_EQ(stats, 6);  // running_mean and running_var of bn1..3
  // The run keeps its own copy of the module; the meta names where it came from.
  EXPECT_TRUE(fs::exists(dir + "/ts/backbone.pt"));
  const auto meta = nlohmann::json::parse(testdata::slurp(dir + "/ts/meta.json"));
  EXPECT_EQ(meta["backbone"], "torchscript");
  EXPECT_EQ(meta["backbone_source"], dir + "/user_model.pt");
  EXPECT_EQ(model->embedding_dim(), 16);
  ASSERT_TRUE(model->proj);  // 32 features -> 16
  EXPECT_EQ(model->proj->weight.size(1), 32);
}

TEST_F(TorchScriptBackbone, ExtractionIsDeterministicAndDropoutActsOnlyInTraining) {
  auto model = engine::load_run_model(dir + "/ts");  // eval mode
  torch::manual_seed(3);
  const auto x = torch::randn({64, 1, 28, 28});
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(model->forward(x), model->forward(x)));
  // Training mode: both forwards see the same batch statistics, so they differ only by
  // their dropout masks: f = p · m / 0.7, m ∈ {0, 1} with P(m = 0) = 0.3.
  model->train();
  const auto f1 = model->backbone->forward(x), f2 = model->backbone->forward(x);
  ASSERT_EQ(f1.sizes(), (std::vector<int64_t>{64, 32}));
  const auto both = (f1 != 0) & (f2 != 0);
  EXPECT_TRUE(torch::equal(f1.masked_select(both), f2.masked_select(both)));
  const double zeros = (f1 == 0).to(torch::kDouble).mean().item<double>();
  EXPECT_NEAR(zeros, 0.3, 0.05) << "dropout p = 0.3 over 2048 features";

  // `dualtune extract` opens the run alone (the user's file was deleted) and gives the
  // same features every time.
  for (const char* out : {"/ex1", "/ex2"}) ok("extract --model " + dir + "/ts --out " + dir + out + " --threads 1");
  const auto a = npy::load(dir + "/ex1/features.npy"), b = npy::load(dir + "/ex2/features.npy");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{60, 16}));
  EXPECT_EQ(a.f32, b.f32);
}

TEST_F(TorchScriptBackbone, ResumeAfterAKillAtTheEndOfEpochOneEqualsTheUninterruptedRun) {
  std::ofstream(dir + "/resume.yml") << base_yaml();
  const std::string train = "train -c " + dir + "/resume.yml model.backbone=torchscript model.path=" +
                            fixture("scripted.pt") + " optim.epochs=2 output_dir=";
  ok(train + dir + "/full");
  int st = 0;
  auto out = testdata::run_command("DUALTUNE_FAULT=after-epoch:1 " + std::string(DUALTUNE_BINARY) + " " + train +
                                       dir + "/cut",
                                   &st);
  ASSERT_NE(st, 0) << "the fault should have killed the run after epoch 1\n" << out;
  EXPECT_EQ(nlohmann::json::parse(testdata::slurp(dir + "/cut/meta.json"))["epochs_done"], 1);
  out = cli(train + dir + "/cut --resume", &st);
  ASSERT_EQ(st, 0) << out;
  EXPECT_NE(out.find("resuming after epoch 1"), std::string::npos) << out;

  auto full = engine::load_run_model(dir + "/full"), cut = engine::load_run_model(dir + "/cut");
  const auto a = named_state(*full), b = named_state(*cut);
  ASSERT_EQ(a.size(), b.size());
  int backbone_tensors = 0;
  for (const auto& [name, t] : a) {
    ASSERT_TRUE(b.count(name)) << name;
    EXPECT_TRUE(torch::equal(t, b.at(name))) << name << " differs after resume";
    backbone_tensors += name.rfind("backbone.", 0) == 0;
  }
  EXPECT_EQ(backbone_tensors, 9 + 9);  // 3 convs + 3 × (weight, bias); 3 × (mean, var, count)
  const auto meta = nlohmann::json::parse(testdata::slurp(dir + "/cut/meta.json"));
  EXPECT_EQ(meta["epochs_done"], 2);
  EXPECT_TRUE(meta["complete"].get<bool>());
}

TEST_F(TorchScriptBackbone, TheRunIsTheOldModelOfASecondTrainingAndStaysUnchanged) {
  // In memory: a new model trained against the scripted run; the old module's
  // parameters and BatchNorm statistics never move (it runs in eval mode, frozen).
  const auto cfg = config({"output_dir=" + dir + "/second_objective", "compat.method=dual-tuning",
                           "old.path=" + dir + "/ts", "compat.mix_weight=1.0"});
  const auto train_set = data::open_dataset(engine::dataset_spec(cfg));
  engine::Objective objective(engine::objective_options(cfg), train_set, dir + "/second_objective",
                              [](const std::string&) {});
  std::vector<torch::Tensor> before;
  for (auto& t : objective.old_model()->state()) before.push_back(t.clone());
  models::ModelSpec spec = engine::model_spec(cfg, 8);
  models::EmbeddingModel model(spec);
  model->train();
  torch::optim::Adam opt(model->parameters(), 1e-2);
  for (int step = 0; step < 3; ++step) {
    const auto x = torch::randn({16, 1, 28, 28});
    const auto y = torch::randint(0, 8, {16}, torch::kInt64);
    torch::Tensor total = torch::zeros({});
    for (auto& t : objective.terms(x, model->forward(x), y, *model)) total = total + t.weight * t.value;
    opt.zero_grad();
    total.backward();
    opt.step();
  }
  const auto after = objective.old_model()->state();
  ASSERT_EQ(after.size(), before.size());
  ASSERT_GE(after.size(), 18u + 6u);  // the module's 18 tensors, proj, neck, classifier
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_TRUE(torch::equal(before[i], after[i])) << "old tensor " << i << " changed";
    EXPECT_FALSE(after[i].grad().defined());
  }

  // End to end: a second scripted model trained against it, by the library and through
  // the CLI's eval and gallery, all from the run directory.
  const auto r = engine::train(config({"output_dir=" + dir + "/second", "model.backbone=torchscript",
                                       "model.path=" + fixture("scripted.pt"), "model.embedding_dim=0",
                                       "compat.method=dual-tuning", "old.path=" + dir + "/ts"}),
                               {false, true});
  EXPECT_EQ(r.epochs, 1);
  EXPECT_EQ(npy::load(dir + "/second/prototypes/prototypes.npy").shape, (std::vector<int64_t>{8, 16}));
  EXPECT_EQ(engine::load_run_model(dir + "/second")->embedding_dim(), 32);  // F, no projection
  ok("eval --model old=" + dir + "/ts --model new=" + dir + "/second --old old --out " + dir + "/report --threads 1");
  EXPECT_TRUE(fs::exists(dir + "/report/report.json"));
  const std::string g = dir + "/gallery";
  ok("gallery create " + g + " --model old --model-path " + dir + "/ts");
  ok("gallery add " + g + " --threads 1 --workers 0 --batch 16");
  ok("gallery rollout " + g + " --model new --model-path " + dir + "/second --force");
  ok("gallery backfill " + g + " --threads 1 --workers 0 --batch 16");
}

TEST_F(TorchScriptBackbone, FrozenParametersStayAndATracedModuleWithoutModeDependentOpsTrains) {
  // conv1 and bn1 exported with requires_grad False: the optimizer leaves them as they
  // were; bn1's running statistics still update in training, as in PyTorch.
  engine::train(config({"output_dir=" + dir + "/partly_frozen", "model.backbone=torchscript",
                        "model.path=" + fixture("partly_frozen.pt")}),
                {false, true});
  auto exported = torch::jit::load(fixture("partly_frozen.pt"));
  const auto trained = named_state(*engine::load_run_model(dir + "/partly_frozen"));
  for (const auto& p : exported.named_parameters()) {
    const bool frozen = p.name.rfind("conv1.", 0) == 0 || p.name.rfind("bn1.", 0) == 0;
    EXPECT_EQ(torch::equal(trained.at("backbone." + p.name).contiguous(), p.value.contiguous()), frozen) << p.name;
  }
  for (const auto& b : exported.named_buffers())
    if (b.name == "bn1.running_mean") EXPECT_FALSE(torch::equal(trained.at("backbone." + b.name), b.value));

  // A traced network with no BatchNorm or dropout: accepted, gradients reach its weights.
  models::ModelSpec spec;
  spec.backbone = "torchscript";
  spec.path = fixture("traced_plain.pt");
  models::EmbeddingModel model(spec);
  EXPECT_EQ(model->backbone->out_channels(), 32);
  model->train();
  model->forward(torch::randn({4, 1, 28, 28})).pow(2).sum().backward();
  const auto grad = model->backbone->named_parameters()["conv1.weight"].grad();
  ASSERT_TRUE(grad.defined());
  EXPECT_GT(grad.abs().sum().item<double>(), 0.0);
}

TEST_F(TorchScriptBackbone, AFeatureMapOutputIsAveragePooled) {
  models::ModelSpec spec;
  spec.backbone = "torchscript";
  spec.path = fixture("feature_map.pt");
  spec.embedding_dim = 0;
  models::EmbeddingModel model(spec);
  ASSERT_EQ(model->embedding_dim(), 32);
  EXPECT_FALSE(model->proj);
  model->eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({5, 1, 28, 28});
  const auto map = model->backbone->forward(x);
  ASSERT_EQ(map.sizes(), (std::vector<int64_t>{5, 32, 7, 7}));
  // A fresh neck in eval mode: e = (f − 0) / √(1 + 1e-5) · 1 + 0.
  EXPECT_TRUE(torch::allclose(model->forward(x), map.mean({2, 3}) / std::sqrt(1.0 + 1e-5), 1e-6, 1e-7));
}

TEST_F(TorchScriptBackbone, Bf16AutocastReachesTheScriptedOps) {
  auto model = engine::load_run_model(dir + "/ts");
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({8, 1, 28, 28});
  const auto e32 = model->forward(x);
  torch::Tensor f16, e16;
  {
    engine::ForwardPrecision bf16("bf16");
    f16 = model->backbone->forward(x);
    e16 = model->forward(x);
  }
  EXPECT_EQ(f16.scalar_type(), torch::kBFloat16) << "the scripted convolutions ran outside autocast";
  const double err = (e16.to(torch::kFloat) - e32).abs().max().item<double>();
  EXPECT_GT(err, 0.0);
  EXPECT_LT(err, 0.05 * e32.abs().max().item<double>()) << "bf16 rounds (8 bits of mantissa), it does not change";
}

TEST_F(TorchScriptBackbone, RefusedModulesSayWhyBeforeAnyTrainingStep) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"traced_eval.pt",
       {"cannot switch between training and extraction", "aten::batch_norm with training fixed to false",
        "torch.jit.trace", "torch.jit.script(net).save(path)"}},
      {"traced_train.pt", {"cannot switch between training and extraction", "fixed to true"}},
      {"bad_shape.pt", {"must return B × F features or a B × F × h × w map", "returned shape [2, 32, 49]"}},
      {"tuple_out.pt", {"must return one tensor", "returned a Tuple"}},
      {"no_trainable.pt", {"no trainable parameter", "found 9 parameters, all with requires_grad False"}},
      {"frozen.pt", {"no trainable parameter", "found 0 parameters", "torch.jit.freeze"}},
      {"not_torchscript.pt", {"cannot load TorchScript backbone", "a torch.save of a module or state dict is not one"}},
      {"missing.pt", {"expected the TorchScript file of model.backbone torchscript, found nothing"}},
  };
  for (const auto& [file, expected] : cases) {
    const std::string out = dir + "/refused_" + file;
    const auto what = error_of([&] {
      engine::train(config({"output_dir=" + out, "model.backbone=torchscript", "model.path=" + fixture(file)}),
                    {false, true});
    });
    for (const auto& e : expected) EXPECT_NE(what.find(e), std::string::npos) << file << ": " << what;
    EXPECT_NE(what.find(fixture(file)), std::string::npos) << file << ": the error names the file: " << what;
    EXPECT_FALSE(fs::exists(out + "/checkpoint.pt")) << file;
    EXPECT_FALSE(fs::exists(out + "/train_log.jsonl")) << file << ": no training step";
    EXPECT_FALSE(fs::exists(out + "/backbone.pt")) << file << ": a refused module is not copied";
  }
  // Input of another shape than the module takes: the probe batch names data.*.
  const auto wrong = error_of([&] {
    engine::train(config({"output_dir=" + dir + "/refused_rgb", "model.backbone=torchscript",
                          "model.path=" + fixture("scripted.pt"), "data.channels=3", "data.mean=[0.5,0.5,0.5]",
                          "data.std=[0.2,0.2,0.2]"}),
                  {false, true});
  });
  EXPECT_NE(wrong.find(fixture("scripted.pt") + " failed on a probe batch of shape [2, 3, 28, 28] (data.channels × "
                       "data.height × data.width): RuntimeError: Given groups=1, weight of size [16, 1, 3, 3], "
                       "expected input[2, 3, 28, 28] to have 1 channels"),
            std::string::npos)
      << wrong;
  // The config: a path exactly when the backbone is torchscript.
  EXPECT_NE(error_of([&] { config({"model.backbone=torchscript"}); })
                .find("config key 'model.path': expected the TorchScript file of model.backbone 'torchscript'"),
            std::string::npos);
  EXPECT_NE(error_of([&] { config({"model.path=" + fixture("scripted.pt")}); })
                .find("config key 'model.path': expected no path with the built-in model.backbone 'convnet-s'"),
            std::string::npos);
}

// `dualtune export` of a torchscript run: model.pt is the trained network (backbone and
// head) as one TorchScript module; Python's torch.jit.load of it embeds the test images
// like `dualtune extract` of the run to 1e-5, and the export opens as a model itself.
TEST_F(TorchScriptBackbone, ExportIsOneTorchScriptModuleThatPythonRunsLikeExtract) {
  const std::string exp = dir + "/ts_export";
  ok("export --model " + dir + "/ts --out " + exp);
  for (const char* f : {"model.pt", "backbone.pt", "state_dict.pt", "model.json", "classes.json", "classifier.npy"})
    EXPECT_TRUE(fs::exists(exp + "/" + f)) << f;
  ok("extract --model " + dir + "/ts --out " + dir + "/ts_feats --threads 1");
  int status = 0;
  const std::string py = dir + "/ts_python.npy";
  const auto out = testdata::run_command("/usr/bin/python3 " + std::string(DUALTUNE_SOURCE_DIR) +
                                             "/tests/scripts/export_features.py " + DUALTUNE_SOURCE_DIR + " " + exp +
                                             " " + dir + "/data/t10k-images-idx3-ubyte " + py + " --torchscript",
                                         &status);
  ASSERT_EQ(status, 0) << "needs python3-torch (scripts/install_deps.sh)\n" << out;
  const auto want = npy::load(dir + "/ts_feats/features.npy"), got = npy::load(py);
  ASSERT_EQ(got.shape, want.shape);
  ASSERT_EQ(want.shape, (std::vector<int64_t>{60, 16}));
  double max_diff = 0, max_abs = 0;
  for (size_t i = 0; i < want.f32.size(); ++i) {
    max_diff = std::max(max_diff, std::abs(double(want.f32[i]) - double(got.f32[i])));
    max_abs = std::max(max_abs, std::abs(double(want.f32[i])));
  }
  EXPECT_LT(max_diff, 1e-5);
  EXPECT_GT(max_abs, 0.1);
  // The export directory is a model wherever the run is.
  ok("extract --model " + exp + " --out " + dir + "/ts_feats_export --threads 1");
  EXPECT_EQ(npy::load(dir + "/ts_feats_export/features.npy").f32, want.f32);
}

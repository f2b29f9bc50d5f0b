// Throughput of the torch side against its compute-only bound, measured side by side
// in one run (the machine is shared and noisy, so only ratios are meaningful):
//   train        full trainer (loader, augmentation, forward, backward, optimizer,
//                logging) vs the same steps on tensors already in memory
//   train-dual   the same for a dual-tuning run (also runs the old model forward and
//                the compatibility terms)
//   extract      extract_features (loader + inference) vs inference on in-memory batches
// each at 1 and at all threads. First, `dualtune train` with glibc's default malloc
// settings (DUALTUNE_MALLOC=default) against the tuned ones (util/allocator.h), which
// the dualtune binary and the rest of this benchmark use.
//
//   bench_train_torch [images=12000] [data_root=/usr/share/datasets/fashion-mnist]
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "dualtune/config/config.h"
#include "dualtune/engine/extract.h"
#include "dualtune/engine/fused_adam.h"
#include "dualtune/engine/objective.h"
#include "dualtune/engine/settings.h"
#include "dualtune/engine/trainer.h"
#include "dualtune/models/embedding_model.h"
#include "dualtune/util/allocator.h"
#include "dualtune/util/install_paths.h"

using namespace dualtune;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

/// The shipped demo configs, found as the binary finds them (util/install_paths.h).
std::string configs() { return require_shipped_dir("configs") + "/fmnist/"; }

config::Config make_cfg(const std::string& file, const std::vector<std::string>& extra, int threads, int64_t images,
                        const std::string& root, const std::string& out) {
  std::vector<std::string> ov{"data.root=" + root, "data.limit=" + std::to_string(images), "optim.epochs=1",
                              "test_accuracy=false", "threads=" + std::to_string(threads), "output_dir=" + out,
                              "log_every=100000"};
  ov.insert(ov.end(), extra.begin(), extra.end());
  return config::Config::load(configs() + file, ov);
}

// Forward + loss + backward + step on in-memory batches: the trainer's compute bound.
double compute_only_train(const config::Config& cfg, int64_t images, const std::string& run_dir) {
  const auto train_set = data::open_dataset(engine::dataset_spec(cfg));
  torch::manual_seed(0);
  models::EmbeddingModel model(engine::model_spec(cfg, static_cast<int64_t>(train_set->classes().size())));
  std::vector<torch::Tensor> params;  // as the trainer: trainable parameters, fused Adam
  for (auto& p : model->parameters())
    if (p.requires_grad()) params.push_back(p);
  engine::FusedAdam opt(params, torch::optim::AdamOptions(1e-3).weight_decay(5e-4));
  engine::Objective objective(engine::objective_options(cfg), train_set, run_dir, [](const std::string&) {});
  const int64_t b = cfg.get<int64_t>("optim.batch_size");
  const int64_t steps = (images + b - 1) / b;
  std::vector<torch::Tensor> xs, ys;
  for (int64_t s = 0; s < std::min<int64_t>(steps, 16); ++s) {
    xs.push_back(torch::randn({b, 1, 28, 28}));
    ys.push_back(torch::randint(0, static_cast<int64_t>(train_set->classes().size()), {b}, torch::kInt64));
  }
  model->train();
  const auto t0 = Clock::now();
  for (int64_t s = 0; s < steps; ++s) {
    const auto& x = xs[s % xs.size()];
    const auto e = model->forward(x);
    torch::Tensor total = torch::zeros({});
    for (const auto& t : objective.terms(x, e, ys[s % ys.size()], *model)) {
      total = total + t.weight * t.value;
      (void)t.value.item<double>();  // the trainer reads every term (NaN check, log)
    }
    opt.zero_grad();
    total.backward();
    opt.step();
  }
  return static_cast<double>(steps * b) / seconds_since(t0);
}

double compute_only_extract(const std::string& run_dir, int64_t images) {
  auto embed = engine::embedder_for(run_dir);
  std::vector<torch::Tensor> xs;
  for (int i = 0; i < 8; ++i) xs.push_back(torch::randn({256, 1, 28, 28}));
  const int64_t steps = (images + 255) / 256;
  torch::NoGradGuard g;
  const auto t0 = Clock::now();
  for (int64_t s = 0; s < steps; ++s) (void)embed(xs[s % xs.size()]).sum().item<float>();
  return static_cast<double>(steps * 256) / seconds_since(t0);
}

// `dualtune train` (the CLI, convnet-m, one epoch) with `env` prepended; img/s of its
// last epoch as it reports it, -1 if it failed.
double cli_train_ips(const std::string& env, int threads, int64_t images, const std::string& root,
                     const std::string& out) {
  const std::string cmd = env + " " + DUALTUNE_BINARY + " train -q -c " + configs() + "new_convnet_m.yml data.root=" +
                          root + " data.limit=" + std::to_string(images) +
                          " optim.epochs=1 test_accuracy=false threads=" + std::to_string(threads) +
                          " output_dir=" + out + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return -1;
  char line[512];
  double ips = -1, secs = 0;
  while (std::fgets(line, sizeof line, p))
    if (std::sscanf(line, "last epoch: %lf s, %lf img/s", &secs, &ips) == 2) break;
  while (std::fgets(line, sizeof line, p)) {
  }
  return ::pclose(p) == 0 ? ips : -1;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t images = argc > 1 ? std::atoll(argv[1]) : 12000;
  const std::string root = argc > 2 ? argv[2] : kFashionMnistDir;
  const auto tmp = std::filesystem::temp_directory_path() / ("bench_train_" + std::to_string(::getpid()));
  std::filesystem::create_directories(tmp);
  const int all = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  // The allocator setting (util/allocator.h), on the CLI: glibc defaults vs tuned.
  const double default_malloc = cli_train_ips("DUALTUNE_MALLOC=default", all, images, root, (tmp / "m0").string());
  const double tuned_malloc = cli_train_ips("", all, images, root, (tmp / "m1").string());
  std::printf("allocator, dualtune train (convnet-m, %d threads): glibc defaults %.0f img/s, tuned %.0f img/s, "
              "ratio %.2f (this benchmark: tuning %s)\n\n",
              all, default_malloc, tuned_malloc, tuned_malloc / default_malloc,
              malloc_tuning_active() ? "active" : "NOT active");
  std::fflush(stdout);

  // The old model for the dual-tuning rows (not timed).
  engine::set_threads(all);
  const std::string old_dir = (tmp / "old").string();
  engine::train(make_cfg("old_convnet_s.yml", {}, all, 3000, root, old_dir), {false, true});

  std::printf("%-12s %7s %12s %14s %7s\n", "stage", "threads", "full img/s", "compute img/s", "ratio");
  for (int threads : {1, all}) {
    engine::set_threads(threads);
    for (const char* what : {"train", "train-dual"}) {
      const bool dual = std::string(what) == "train-dual";
      std::vector<std::string> extra;
      if (dual) extra = {"old.path=" + old_dir};
      const auto out = (tmp / (std::string(what) + std::to_string(threads))).string();
      const auto cfg = make_cfg(dual ? "new_dual_tuning.yml" : "new_convnet_m.yml", extra, threads, images, root, out);
      const double full = engine::train(cfg, {false, true}).images_per_second;
      const double bound = compute_only_train(cfg, images, out + "_bound");
      std::printf("%-12s %7d %12.0f %14.0f %7.2f\n", what, threads, full, bound, full / bound);
      std::fflush(stdout);
    }
    // Extraction of the test split with the old model.
    auto cfg = make_cfg("old_convnet_s.yml", {}, threads, images, root, old_dir);
    auto spec = engine::dataset_spec(cfg, "test");
    spec.classes = "all";
    const auto test = data::open_dataset(spec);
    const auto t0 = Clock::now();
    const auto fs = engine::extract_features(engine::embedder_for(old_dir), test, engine::transform_options(cfg, false),
                                             256, cfg.get<int>("data.workers"));
    const double full = static_cast<double>(fs.n) / seconds_since(t0);
    const double bound = compute_only_extract(old_dir, fs.n);
    std::printf("%-12s %7d %12.0f %14.0f %7.2f\n", "extract", threads, full, bound, full / bound);
    std::fflush(stdout);
  }
  std::filesystem::remove_all(tmp);
  return 0;
}

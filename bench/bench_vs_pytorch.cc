// dualtune against PyTorch from Python on the same convnet-m, measured side by side in
// alternating rounds (the machine is shared: only ratios within a run mean anything):
//   train    `dualtune train` (the real command: threaded loader with decoding and
//            augmentation, forward, backward, fused Adam, NaN checks, JSON log; one epoch,
//            its img/s as the trainer reports it) against bench/pytorch_convnet_m.py (the
//            same model, loss, Adam with L2 weight decay and cosine schedule on the same
//            images held in memory, no augmentation, first step excluded) in fp32
//            channels-last and default layout, and both in bf16 (CPU autocast)
//   extract  engine::extract_features (loader + batched inference of a trained run, the
//            path of `dualtune extract` and the demo) on the 10,000 test images against
//            the script's no-grad inference of as many in-memory images, batch 256
// The CPU's bf16 support and the instruction set oneDNN dispatches to (from its verbose
// output) are printed first: bf16 is only fast with avx512_bf16 or AMX.
//
// A warm-up round runs first on both sides and is discarded (PyTorch's first rounds are
// often slower on a shared machine, which flattered dualtune's ratios); then `rounds`
// measured rounds. Each row prints min / median / max over them, and each ratio is given
// both as the median of per-round ratios and against the other side's best round.
// bf16 rows are measured in the first `bf16_rounds` measured rounds only (default: all
// with avx512_bf16 or AMX, else 0): without them libtorch 1.13 runs bf16 convolutions
// outside oneDNN, an order of magnitude slower than fp32 (docs/PERFORMANCE.md).
//
//   bench_vs_pytorch [rounds=5] [images=12800] [threads=2] [bf16_rounds]
//                    [data_root=/usr/share/datasets/fashion-mnist]
//   environment: PYTHON (default /usr/bin/python3, Debian's python3-torch);
//                BEFORE=<another dualtune binary>: its fp32 training joins every round
//                (before/after comparisons, e.g. main's build)
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "dualtune/config/config.h"
#include "dualtune/engine/extract.h"
#include "dualtune/engine/settings.h"
#include "dualtune/util/cpu_features.h"
#include "dualtune/util/install_paths.h"
#include "vs_pytorch.h"

using namespace dualtune;
using namespace dualtune::bench;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 5;
  const int64_t images = argc > 2 ? std::atoll(argv[2]) : 12800;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 2;
  const int bf16_rounds = argc > 4 ? std::atoi(argv[4]) : cpu_bf16().fast ? rounds : 0;
  const std::string root = argc > 5 ? argv[5] : kFashionMnistDir;
  const auto tmp = std::filesystem::temp_directory_path() / ("bench_vs_pytorch_" + std::to_string(::getpid()));
  std::filesystem::create_directories(tmp);
  const std::string script = python() + " " + source("bench/pytorch_convnet_m.py");
  const std::string common = " --threads " + std::to_string(threads) + " --root " + root;

  std::printf("CPU: %s\n", cpu_flags().c_str());
  bool ok = false;
  const std::string verbose =
      run("ONEDNN_VERBOSE=1 " + script + " train --images 256" + common + " --channels-last | grep -E 'isa|convolution' | sed -n 1,2p", &ok);
  std::printf("oneDNN (verbose, first lines of an fp32 step):\n%s", verbose.c_str());
  const std::string py_version = run(python() + " -c 'import torch; print(torch.__version__)'", &ok);
  if (!ok) {
    std::printf("PyTorch not available through %s (Debian: python3-torch): %s\n", python().c_str(), py_version.c_str());
    return 1;
  }
  std::printf("PyTorch %s", py_version.c_str());
  std::printf("convnet-m, batch 128, %d threads, %lld Fashion-MNIST images, a warm-up round (discarded) and %d "
              "alternating rounds, bf16 in %d\n\n",
              threads, static_cast<long long>(images), rounds, std::min(rounds, bf16_rounds));
  std::fflush(stdout);

  const char* before = std::getenv("BEFORE");
  // precision "": the binary's default, fp32 (a binary older than optim.precision refuses the key)
  auto dualtune_train = [&](const std::string& precision, const std::string& out,
                            const std::string& binary = DUALTUNE_BINARY) {
    const std::string cmd = binary + " train -q -c " + source("configs/fmnist/new_convnet_m.yml") +
                            " data.root=" + root + " data.limit=" + std::to_string(images) +
                            " optim.epochs=1 test_accuracy=false threads=" + std::to_string(threads) +
                            (precision.empty() ? "" : " optim.precision=" + precision) + " output_dir=" + out;
    bool good = false;
    const std::string o = run(cmd, &good);
    if (!good) std::fprintf(stderr, "dualtune train failed:\n%s\n", o.c_str());
    return good ? train_images_per_second(o) : -1.0;
  };
  auto pytorch = [&](const std::string& mode, const std::string& flags, int64_t n, int64_t batch) {
    bool good = false;
    const std::string o = run(script + " " + mode + " --images " + std::to_string(n) + " --batch " +
                                  std::to_string(batch) + common + " " + flags,
                              &good);
    if (!good) std::fprintf(stderr, "pytorch_convnet_m.py failed:\n%s\n", o.c_str());
    return good ? number_after(o, "img/s ") : -1;
  };

  // Extraction needs a trained run; its weights do not change the work.
  const std::string run_dir = (tmp / "run").string();
  const auto cfg = config::Config::load(source("configs/fmnist/new_convnet_m.yml"), {"data.root=" + root});
  auto spec = engine::dataset_spec(cfg, "test");
  spec.classes = "all";
  const auto test_set = data::open_dataset(spec);
  auto dualtune_extract = [&] {
    engine::set_threads(threads);
    const auto t0 = Clock::now();
    const auto fs = engine::extract_features(engine::embedder_for(run_dir), test_set,
                                             engine::transform_options(cfg, false), 256, cfg.get<int>("data.workers"));
    return static_cast<double>(fs.n) / std::chrono::duration<double>(Clock::now() - t0).count();
  };

  std::vector<std::string> names{"dualtune train fp32",
                                       "PyTorch fp32 channels-last",
                                       "PyTorch fp32 (default layout)",
                                       "dualtune train bf16",
                                       "PyTorch bf16 autocast channels-last",
                                       "dualtune extract (loader + inference)",
                                       "PyTorch extract fp32 channels-last"};
  if (before) names.push_back("BEFORE binary: dualtune train fp32");
  Rounds ips;
  // Round 0 is the warm-up: measured like the others, then dropped from every row.
  for (int r = 0; r <= rounds; ++r) {
    ips[names[0]].push_back(dualtune_train("fp32", r == 0 ? run_dir : (tmp / ("fp32_" + std::to_string(r))).string()));
    ips[names[1]].push_back(pytorch("train", "--channels-last", images, 128));
    ips[names[2]].push_back(pytorch("train", "", images, 128));
    if (r <= bf16_rounds && bf16_rounds > 0) {
      ips[names[3]].push_back(dualtune_train("bf16", (tmp / ("bf16_" + std::to_string(r))).string()));
      ips[names[4]].push_back(pytorch("train", "--channels-last --bf16", images, 128));
    }
    ips[names[5]].push_back(dualtune_extract());
    ips[names[6]].push_back(pytorch("extract", "--channels-last", static_cast<int64_t>(test_set->size()), 256));
    if (before) ips[names[7]].push_back(dualtune_train("", (tmp / ("before_" + std::to_string(r))).string(), before));
    print_round(r, names, ips);
  }
  drop_warm_up(ips);
  // bf16 without bf16 rounds and BEFORE without a binary print "not measured"
  print_table(names, ips);
  print_ratio("dualtune train fp32 / PyTorch fp32 channels-last", ips, names[0], names[1]);
  print_ratio("dualtune train fp32 / PyTorch fp32 default layout", ips, names[0], names[2]);
  print_ratio("dualtune train bf16 / PyTorch bf16", ips, names[3], names[4]);
  print_ratio("dualtune train bf16 / PyTorch fp32 default layout", ips, names[3], names[2]);
  print_ratio("dualtune train bf16 / dualtune train fp32", ips, names[3], names[0]);
  print_ratio("dualtune extract / PyTorch extract", ips, names[5], names[6]);
  if (before) {  // names[7] exists only with a BEFORE binary (indexing it without one crashed at the end)
    print_ratio("dualtune train fp32 / BEFORE binary fp32", ips, names[0], names[7]);
    print_ratio("BEFORE binary fp32 / PyTorch fp32 channels-last", ips, names[7], names[1]);
  }
  std::filesystem::remove_all(tmp);
  return 0;
}

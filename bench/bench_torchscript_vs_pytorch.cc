// The same scripted module trained by dualtune (model.backbone: torchscript) and by
// PyTorch from Python, measured side by side in alternating rounds (the machine is
// shared: only ratios within a run mean anything), then both trained once more on
// `accuracy_images` with their test top-1.
//
// The module: bench/pytorch_torchscript.py writes it (torch.jit.script of a ResNet-style
// CNN for 1 x 28 x 28 Fashion-MNIST, --arch); both sides load that one file.
//   dualtune   `dualtune train` (the real command: threaded loader with decoding,
//              forward through the TorchScript interpreter with graph optimisation off,
//              backward, fused Adam, NaN checks, JSON log) with model.embedding_dim=0
//              (no projection: BatchNorm1d neck with its shift frozen, bias-free
//              classifier), softmax loss with label smoothing 0.1, Adam lr 1e-3 with L2
//              weight decay 5e-4, cosine schedule over the epoch, batch 128, augmentation
//              off (augment.flip=false, augment.pad=0), fp32; its img/s as the trainer
//              reports it (the whole epoch, first step included)
//   PyTorch    bench/pytorch_torchscript.py train: the same head, loss, optimizer and
//              schedule on images held in memory, channels-last like dualtune, the first
//              step run once more before the clock starts; the module run as
//                scripted     torch.jit.load, PyTorch's default executor
//                no-optimize  torch.jit.optimized_execution(False), as dualtune runs it
//                eager        the Python class with the file's weights
// The speed rounds train on `images` images: dualtune's data.limit takes a seeded random
// subset of the training set, the script the first `images` (the work is the same).
// The accuracy run trains on the first `accuracy_images` in the script (shuffled) and on
// dualtune's data.limit subset — the same 60,000 images for the full epoch (the default).
//
// A warm-up round runs first on every side and is discarded, then `rounds` measured
// rounds; each row prints min / median / max, each ratio the median of the per-round
// ratios (their range) and dualtune's median over PyTorch's best round.
//
//   bench_torchscript_vs_pytorch [rounds=3] [images=3200] [threads=2] [accuracy_images=60000]
//                                [arch=resnet-s] [sides=scripted,no-optimize,eager]
//                                [data_root=/usr/share/datasets/fashion-mnist]
//   accuracy_images 0 skips the accuracy run. environment: PYTHON (default /usr/bin/python3)
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "dualtune/util/install_paths.h"
#include "vs_pytorch.h"

using namespace dualtune;
using namespace dualtune::bench;

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 3;
  const int64_t images = argc > 2 ? std::atoll(argv[2]) : 3200;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 2;
  const int64_t accuracy_images = argc > 4 ? std::atoll(argv[4]) : 60000;
  const std::string arch = argc > 5 ? argv[5] : "resnet-s";
  std::vector<std::string> sides;
  {
    std::stringstream ss(argc > 6 ? argv[6] : "scripted,no-optimize,eager");
    for (std::string s; std::getline(ss, s, ',');) sides.push_back(s);
  }
  const std::string root = argc > 7 ? argv[7] : kFashionMnistDir;
  if (rounds < 1 || images < 128 || threads < 1 || accuracy_images < 0 || sides.empty()) {
    std::fprintf(stderr, "expected rounds >= 1, images >= 128, threads >= 1, accuracy_images >= 0, sides non-empty\n");
    return 2;
  }
  const auto tmp = std::filesystem::temp_directory_path() / ("bench_ts_vs_pytorch_" + std::to_string(::getpid()));
  std::filesystem::create_directories(tmp);
  const std::string script = python() + " " + source("bench/pytorch_torchscript.py");
  const std::string module = (tmp / "module.pt").string();

  bool ok = false;
  const std::string py_version = run(python() + " -c 'import torch; print(torch.__version__)'", &ok);
  if (!ok) {
    std::printf("PyTorch not available through %s (Debian: python3-torch): %s\n", python().c_str(), py_version.c_str());
    return 1;
  }
  const std::string wrote = run(script + " write " + module + " --arch " + arch, &ok);
  if (!ok) {
    std::printf("writing the module failed: %s\n", wrote.c_str());
    return 1;
  }
  std::printf("CPU: %s\nPyTorch %s", cpu_flags().c_str(), py_version.c_str());
  std::printf("scripted %s, batch 128, %d threads, %lld Fashion-MNIST images, a warm-up round (discarded) and %d "
              "alternating rounds\n\n",
              arch.c_str(), threads, static_cast<long long>(images), rounds);
  std::fflush(stdout);

  const std::string common = " --module " + module + " --arch " + arch + " --threads " + std::to_string(threads) +
                             " --root " + root + " --channels-last";
  // limit 0 = the whole training set (data.limit's "all")
  auto dualtune_train = [&](int64_t n, bool accuracy, const std::string& out, std::string* log) {
    const std::string cmd = std::string(DUALTUNE_BINARY) + " train -q -c " +
                            source("configs/fmnist/new_convnet_m.yml") + " model.backbone=torchscript model.path=" +
                            module + " model.embedding_dim=0 augment.flip=false augment.pad=0 data.root=" + root +
                            " data.limit=" + std::to_string(n >= 60000 ? 0 : n) + " optim.epochs=1 test_accuracy=" +
                            (accuracy ? "true" : "false") + " threads=" + std::to_string(threads) + " output_dir=" + out;
    bool good = false;
    *log = run(cmd, &good);
    if (!good) std::fprintf(stderr, "dualtune train failed:\n%s\n", log->c_str());
    return good ? train_images_per_second(*log) : -1.0;
  };
  auto pytorch = [&](const std::string& side, int64_t n, const std::string& flags, std::string* log) {
    bool good = false;
    *log = run(script + " train --as " + side + " --images " + std::to_string(n) + common + flags, &good);
    if (!good) std::fprintf(stderr, "pytorch_torchscript.py failed:\n%s\n", log->c_str());
    return good ? number_after(*log, "img/s ") : -1;
  };

  const std::string dt = "dualtune train (torchscript)";
  std::vector<std::string> names{dt};
  for (const auto& s : sides) names.push_back("PyTorch " + s);
  Rounds ips;
  std::string log;
  for (int r = 0; r <= rounds; ++r) {  // round 0: the warm-up, dropped below
    ips[dt].push_back(dualtune_train(images, false, (tmp / ("run_" + std::to_string(r))).string(), &log));
    for (const auto& s : sides) ips["PyTorch " + s].push_back(pytorch(s, images, "", &log));
    print_round(r, names, ips);
  }
  drop_warm_up(ips);
  print_table(names, ips);
  for (const auto& s : sides) print_ratio(dt + " / PyTorch " + s, ips, dt, "PyTorch " + s);

  if (accuracy_images > 0) {
    std::printf("\naccuracy: one epoch on %lld images (data.limit / the script's first, shuffled), test top-1 on "
                "the 10,000 test images\n",
                static_cast<long long>(accuracy_images));
    std::fflush(stdout);
    const double d_ips = dualtune_train(accuracy_images, true, (tmp / "accuracy").string(), &log);
    std::printf("  %-32s %8.0f img/s  test top-1 %6.2f%%\n", dt.c_str(), d_ips,
                number_after(log, "test top-1 accuracy: "));
    std::fflush(stdout);
    const double p_ips = pytorch(sides.front(), accuracy_images, " --shuffle --test", &log);
    std::printf("  %-32s %8.0f img/s  test top-1 %6.2f%%\n", ("PyTorch " + sides.front()).c_str(), p_ips,
                number_after(log, "test top-1 "));
  }
  std::filesystem::remove_all(tmp);
  return 0;
}

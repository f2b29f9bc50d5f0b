// models/fused_ops.h against the libtorch ops it replaces, side by side in one process
// (the machine is shared and noisy: rounds alternate the two, only ratios compare):
//   step  a training step of convnet-m as the trainer runs it (forward under the
//         precision's autocast, label-smoothing cross-entropy, backward, fused Adam) on
//         in-memory batches, libtorch path vs fused path; img/s per round
//   pool  relu_(max_pool2d) forward + backward alone on block 1's activation
//         (B × 64 × 28 × 28, NCHW) and block 2's (B × 128 × 14 × 14, channels-last)
// Both models start from the same weights and see the same batches, so their parameters
// must stay equal bit for bit; the benchmark checks that at the end.
//
//   bench_fused_ops_torch [rounds=7] [steps=10] [threads=1] [precision=bf16] [batch=128] [kernels=best]
// kernels: avx512, avx2 or base (SSE2), to see what a CPU without AVX-512 gets.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "dualtune/engine/fused_adam.h"
#include "dualtune/models/embedding_model.h"
#include "dualtune/models/forward_precision.h"
#include "dualtune/models/fused_ops.h"

using namespace dualtune;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Side {
  models::EmbeddingModel model{nullptr};
  std::unique_ptr<engine::FusedAdam> opt;
};

Side make_side() {
  torch::manual_seed(0);
  models::ModelSpec spec;
  spec.backbone = "convnet-m";
  Side s;
  s.model = models::EmbeddingModel(spec);
  s.model->train();
  std::vector<torch::Tensor> ps;
  for (auto& p : s.model->parameters())
    if (p.requires_grad()) ps.push_back(p);
  s.opt = std::make_unique<engine::FusedAdam>(ps, torch::optim::AdamOptions(1e-3).weight_decay(5e-4));
  return s;
}

void step(Side& s, const torch::Tensor& x, const torch::Tensor& y, const std::string& precision) {
  torch::Tensor e;
  {
    models::ForwardPrecision cast(precision);
    e = s.model->forward(x);
  }
  const auto logits = s.model->classifier->forward(e.to(torch::kFloat));
  const auto loss = torch::nn::functional::cross_entropy(
      logits, y, torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(0.1));
  (void)loss.item<double>();
  s.opt->zero_grad();
  loss.backward();
  s.opt->step();
}

void summary(const char* what, std::vector<double> v) {
  std::sort(v.begin(), v.end());
  std::printf("%-28s min %8.3f  median %8.3f  max %8.3f\n", what, v.front(), v[v.size() / 2], v.back());
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 7;
  const int steps = argc > 2 ? std::atoi(argv[2]) : 10;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 1;
  const std::string precision = argc > 4 ? argv[4] : "bf16";
  const int64_t batch = argc > 5 ? std::atoll(argv[5]) : 128;
  const std::string kernels = models::set_fused_kernels(argc > 6 ? argv[6] : "best");
  torch::set_num_threads(threads);

  std::vector<torch::Tensor> xs, ys;
  for (int i = 0; i < 8; ++i) {
    xs.push_back(torch::randn({batch, 1, 28, 28}));
    ys.push_back(torch::randint(0, 10, {batch}, torch::kInt64));
  }
  Side sides[2] = {make_side(), make_side()};  // 0: libtorch ops, 1: fused
  int64_t seen[2] = {0, 0};
  auto run = [&](int which, int n) {
    models::set_fused_ops(which == 1);
    for (int i = 0; i < n; ++i, ++seen[which]) step(sides[which], xs[seen[which] % 8], ys[seen[which] % 8], precision);
  };
  run(0, 2);  // warm-up: oneDNN primitives, allocator
  run(1, 2);

  std::printf("convnet-m training step, %s, %d thread(s), batch %lld, %d steps per round, fused kernels %s\n",
              precision.c_str(), threads, static_cast<long long>(batch), steps, kernels.c_str());
  std::vector<double> ips[2], ratio;
  for (int r = 0; r < rounds; ++r) {
    double v[2];
    for (int k = 0; k < 2; ++k) {
      const int which = (r % 2) ? 1 - k : k;  // alternate which side goes first
      const auto t0 = Clock::now();
      run(which, steps);
      v[which] = static_cast<double>(steps * batch) / since(t0);
    }
    ips[0].push_back(v[0]);
    ips[1].push_back(v[1]);
    ratio.push_back(v[1] / v[0]);
    std::printf("round %d: libtorch %.0f img/s, fused %.0f img/s, ratio %.3f\n", r + 1, v[0], v[1], v[1] / v[0]);
    std::fflush(stdout);
  }
  summary("libtorch ops img/s", ips[0]);
  summary("fused img/s", ips[1]);
  summary("ratio fused/libtorch", ratio);

  // The parameters after the same steps on the same batches: equal bit for bit.
  bool same = true;
  const auto p0 = sides[0].model->parameters(), p1 = sides[1].model->parameters();
  for (size_t i = 0; i < p0.size(); ++i) same = same && torch::equal(p0[i], p1[i]);
  std::printf("parameters after %lld steps each: %s\n", static_cast<long long>(seen[0]),
              same ? "bit for bit equal" : "DIFFERENT");

  // The pool alone, forward + backward, on convnet-m's two pooled activations as the
  // trainer has them: block 1 NCHW (its convolution's input and weight have one channel,
  // which libtorch counts as NCHW), block 2 channels-last.
  const auto dtype = precision == "bf16" ? torch::kBFloat16 : torch::kFloat;
  struct Act {
    const char* name;
    int64_t c, hw;
    at::MemoryFormat format;
  };
  for (const Act& a : {Act{"block 1 (64x28x28, NCHW)", 64, 28, at::MemoryFormat::Contiguous},
                       Act{"block 2 (128x14x14, NHWC)", 128, 14, at::MemoryFormat::ChannelsLast}}) {
    const auto act = torch::randn({batch, a.c, a.hw, a.hw}).to(dtype).contiguous(a.format);
    const auto g = torch::randn({batch, a.c, a.hw / 2, a.hw / 2}).to(dtype).contiguous(a.format);
    std::vector<double> ms[2];
    for (int r = 0; r < rounds; ++r) {
      for (int which : {0, 1}) {
        models::set_fused_ops(which == 1);
        const auto t0 = Clock::now();
        for (int i = 0; i < 10; ++i) {
          auto xi = act.detach().requires_grad_(true);
          models::max_pool2x2_relu(xi).backward(g);
        }
        ms[which].push_back(since(t0) * 100.0);
      }
    }
    std::printf("pool+relu fwd+bwd ms, %s:\n", a.name);
    summary("  libtorch", ms[0]);
    summary("  fused", ms[1]);
  }
  models::set_fused_ops(true);
  return same ? 0 : 1;
}

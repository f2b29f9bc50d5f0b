// models/fused_ops.h against the libtorch ops they replace: forward values and input
// gradients equal bit for bit (NaN: NaN at the same places), on inputs made to have ties
// in the windows, NaN, ±inf and ±0, odd sizes, bf16 and float32; small cases checked
// against values worked out by hand; and a few bf16 training steps of the convnets whose
// parameters come out bit for bit those of the libtorch path.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <limits>
#include <set>

#include "dualtune/models/embedding_model.h"
#include "dualtune/models/forward_precision.h"
#include "dualtune/models/fused_ops.h"
#include "dualtune/util/error.h"

namespace models = dualtune::models;
using torch::indexing::Slice;

namespace {

// Restores the process-wide switch whatever a test does.
struct FusedSwitch {
  explicit FusedSwitch(bool on) { models::set_fused_ops(on); }
  ~FusedSwitch() { models::set_fused_ops(true); }
};

// The raw bits of a tensor (its logical NCHW order), NaNs replaced by one pattern, so
// that equal() compares everything but NaN payloads (which libtorch itself does not keep,
// fused_ops.h), and NaN against a number still differs.
torch::Tensor bits(const torch::Tensor& t) {
  auto c = t.detach().contiguous().clone();
  if (!c.is_floating_point()) return c;
  c.masked_fill_(c.isnan(), std::numeric_limits<float>::quiet_NaN());
  const auto as = c.scalar_type() == at::kBFloat16 ? at::kShort : at::kInt;
  auto b = c.view(as).clone();
  b.masked_fill_(c.isnan(), 12345);
  return b;
}

void expect_same_bits(const torch::Tensor& a, const torch::Tensor& b, const std::string& what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  ASSERT_EQ(a.scalar_type(), b.scalar_type()) << what;
  const auto diff = bits(a).ne(bits(b));
  EXPECT_EQ(diff.sum().item<int64_t>(), 0) << what << ": first differing element at "
                                          << (diff.any().item<bool>() ? diff.flatten().nonzero()[0].item<int64_t>() : -1);
}

// Values with many ties (small integers, halves), ±0, ±inf and NaN sprinkled in.
torch::Tensor tricky(std::vector<int64_t> shape, at::ScalarType dtype, int64_t seed) {
  torch::manual_seed(seed);
  auto x = torch::randint(-3, 4, shape).to(torch::kFloat) * 0.5;
  const auto u = torch::rand(shape);
  x.masked_fill_(u < 0.02, std::numeric_limits<float>::quiet_NaN());
  x.masked_fill_((u >= 0.02) & (u < 0.04), -std::numeric_limits<float>::infinity());
  x.masked_fill_((u >= 0.04) & (u < 0.05), std::numeric_limits<float>::infinity());
  x.masked_fill_((u >= 0.05) & (u < 0.10), -0.0);
  return x.to(dtype);
}

struct PoolResult {
  torch::Tensor y, gx;
  std::string grad_fn;
};

// relu_(max_pool2d(x, 2)) and its input gradient for output gradient g, through the
// fused op or (fused off) libtorch's two ops.
PoolResult pool_relu(const torch::Tensor& x, const torch::Tensor& g, bool fused) {
  FusedSwitch s(fused);
  auto xi = x.detach().clone(at::MemoryFormat::Preserve).requires_grad_(true);
  auto y = models::max_pool2x2_relu(xi);
  y.backward(g);
  return {y.detach(), xi.grad(), y.grad_fn() ? y.grad_fn()->name() : ""};
}

// The hand cases have one channel; a one-channel tensor counts as NCHW (its layout is
// ambiguous, libtorch's suggest_memory_format says contiguous), so they run as two equal
// channels in channels-last layout and channel 0 is read back.
PoolResult pool_relu_2ch(const torch::Tensor& x, const torch::Tensor& g) {
  auto r = pool_relu(torch::cat({x, x}, 1).contiguous(at::MemoryFormat::ChannelsLast), torch::cat({g, g}, 1), true);
  return {r.y.select(1, 0).unsqueeze(1), r.gx.select(1, 0).unsqueeze(1), r.grad_fn};
}

}  // namespace

TEST(FusedPoolRelu, HandWorkedWindows) {
  // One channel, 2 × 4 input: two windows. Window 0 = [1 1; 1 1] (all tied: the first,
  // position 0, wins); window 1 = [NaN 5; NaN −2] (NaN wins, the last NaN: position 2).
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto x = torch::tensor({1.f, 1.f, nan, 5.f, 1.f, 1.f, nan, -2.f}).view({1, 1, 2, 4});
  const auto g = torch::tensor({3.f, 7.f}).view({1, 1, 1, 2});
  const auto r = pool_relu_2ch(x, g);
  EXPECT_NE(r.grad_fn.find("PoolRelu"), std::string::npos) << r.grad_fn;
  EXPECT_EQ(r.y[0][0][0][0].item<float>(), 1.f);
  EXPECT_TRUE(std::isnan(r.y[0][0][0][1].item<float>()));
  const auto want = torch::tensor({3.f, 0.f, 0.f, 0.f, 0.f, 0.f, 7.f, 0.f}).view({1, 1, 2, 4});
  EXPECT_TRUE(torch::equal(r.gx.contiguous(), want)) << r.gx;

  // relu: a window whose maximum is −1 gives +0 and no gradient; one of −0 gives −0
  // (relu keeps it) and no gradient either (relu's backward passes none where out ≤ 0);
  // a gradient of −0 reaching an input comes out +0 (0 + (−0)).
  auto x2 = torch::tensor({-1.f, -3.f, -0.f, -0.f, 0.5f, 2.f, -2.f, -1.f, -5.f, -0.f, 0.f, 0.f})
                .view({1, 1, 2, 6});
  const auto g2 = torch::tensor({4.f, 4.f, -0.f}).view({1, 1, 1, 3});
  const auto r2 = pool_relu_2ch(x2, g2);
  EXPECT_NE(r2.grad_fn.find("PoolRelu"), std::string::npos) << r2.grad_fn;
  const auto y = r2.y.contiguous().view(-1);
  EXPECT_EQ(y[0].item<float>(), 0.f);
  EXPECT_FALSE(std::signbit(y[0].item<float>()));
  EXPECT_TRUE(std::signbit(y[1].item<float>()));
  EXPECT_EQ(y[2].item<float>(), 2.f);
  const auto gx = r2.gx.contiguous().view(-1);
  for (int64_t i = 0; i < 12; ++i) {
    EXPECT_EQ(gx[i].item<float>(), 0.f) << i;
    EXPECT_FALSE(std::signbit(gx[i].item<float>())) << i;
  }
}

// With each set of compiled kernels this CPU can run (AVX-512, AVX2, SSE2: the CI's CPU
// may lack AVX-512), in both layouts.
TEST(FusedPoolRelu, SameBitsAsLibtorchOnTiesNanInfOddSizes) {
  struct Restore {  // the best kernels again, whatever fails below
    ~Restore() { models::set_fused_kernels("best"); }
  } restore;
  int ran = 0;
  for (const std::string isa : {"avx512", "avx2", "base"}) {
    try {
      models::set_fused_kernels(isa);
    } catch (const dualtune::Error& e) {
      std::printf("(%s)\n", e.what());
      continue;
    }
    SCOPED_TRACE("kernels " + isa);
    ++ran;
  int64_t seed = 0;
  for (auto format : {at::MemoryFormat::ChannelsLast, at::MemoryFormat::Contiguous})
  for (auto dtype : {at::kBFloat16, at::kFloat}) {
    for (int64_t c : {64, 67, 5, 1}) {
      for (auto hw : std::vector<std::pair<int64_t, int64_t>>{{8, 8}, {7, 9}, {2, 3}, {28, 28}}) {
        const std::string what = std::string(c10::toString(dtype)) + " " + c10::toString(format) +
                                 " C=" + std::to_string(c) + " H=" + std::to_string(hw.first) +
                                 " W=" + std::to_string(hw.second);
        const auto x = tricky({3, c, hw.first, hw.second}, dtype, ++seed).contiguous(format);
        auto g = tricky({3, c, hw.first / 2, hw.second / 2}, dtype, ++seed);
        g.masked_fill_(g.isinf(), 1.5);  // gradients: ties irrelevant, ±0 and NaN kept
        const auto ref = pool_relu(x, g, false);
        const auto got = pool_relu(x, g, true);
        ASSERT_NE(got.grad_fn.find("PoolRelu"), std::string::npos) << what << ": " << got.grad_fn;
        ASSERT_EQ(ref.grad_fn.find("PoolRelu"), std::string::npos) << what;
        expect_same_bits(got.y, ref.y, what + " forward");
        expect_same_bits(got.gx, ref.gx, what + " input gradient");
        EXPECT_TRUE(got.y.is_contiguous(format)) << what;
        EXPECT_TRUE(got.gx.is_contiguous(format)) << what;
        // A channels-last gradient as well (the layout convolutions hand back).
        const auto gl = g.contiguous(at::MemoryFormat::ChannelsLast);
        expect_same_bits(pool_relu(x, gl, true).gx, pool_relu(x, gl, false).gx, what + " channels-last gradient");
      }
    }
  }
  }
  EXPECT_GE(ran, 1);  // base (SSE2) runs on every x86-64
}

TEST(FusedPoolRelu, FallsBackToLibtorchWhereItDoesNotApply) {
  FusedSwitch s(true);
  const auto x = tricky({2, 8, 6, 6}, at::kFloat, 99).transpose(2, 3);  // dense in neither layout
  auto xi = x.clone(at::MemoryFormat::Preserve).requires_grad_(true);
  ASSERT_FALSE(xi.is_contiguous());
  const auto y = models::max_pool2x2_relu(xi);
  EXPECT_EQ(y.grad_fn()->name().find("PoolRelu"), std::string::npos) << y.grad_fn()->name();
  expect_same_bits(y, torch::relu(torch::max_pool2d(x, {2, 2})), "transposed");
  torch::NoGradGuard ng;  // inference: libtorch's ops, the same values
  const auto xl = x.contiguous(at::MemoryFormat::ChannelsLast);
  expect_same_bits(models::max_pool2x2_relu(xl), torch::relu(torch::max_pool2d(xl, {2, 2})), "no grad");
}

TEST(FusedMeanHw, GradientThroughReluSameBitsAndLaidOutLikeTheInput) {
  for (auto dtype : {at::kBFloat16, at::kFloat}) {
    const auto x = tricky({4, 32, 7, 7}, dtype, 5).contiguous(at::MemoryFormat::ChannelsLast);
    const auto g = torch::randn({4, 32}).to(dtype);
    std::vector<torch::Tensor> out, grad;
    for (bool fused : {false, true}) {
      FusedSwitch s(fused);
      auto xi = x.clone(at::MemoryFormat::Preserve).requires_grad_(true);
      auto r = torch::relu(xi);
      auto m = models::mean_hw(r);
      m.backward(g);
      out.push_back(m.detach());
      grad.push_back(xi.grad());
    }
    expect_same_bits(out[1], out[0], "mean");
    expect_same_bits(grad[1], grad[0], "gradient");
    // Hand check of one element: d mean / dx = g / 49 where x > 0.
    const auto xv = x[1][3][2][4].item<float>();
    if (xv > 0) EXPECT_EQ(grad[1][1][3][2][4].item<float>(), (g[1][3] / 49).item<float>());
  }
}

/// The names of the autograd nodes that produced `t` (its whole backward graph).
std::set<std::string> graph_nodes(const torch::Tensor& t) {
  std::set<std::string> names;
  std::vector<std::shared_ptr<torch::autograd::Node>> todo{t.grad_fn()};
  std::set<torch::autograd::Node*> seen;
  while (!todo.empty()) {
    auto n = todo.back();
    todo.pop_back();
    if (!n || !seen.insert(n.get()).second) continue;
    names.insert(n->name());
    for (const auto& e : n->next_edges()) todo.push_back(e.function);
  }
  return names;
}

bool has_node(const std::set<std::string>& names, const std::string& part) {
  for (const auto& n : names)
    if (n.find(part) != std::string::npos) return true;
  return false;
}

// A few bf16 and fp32 training steps, fused and not, in the trainer's channels-last
// layout (to_channels_last, as engine/ does; where the fused pool applies): every
// parameter equal bit for bit afterwards (forward, backward through conv, batch norm,
// pool, relu, mean, the head). resnet18 has no 2x2 pool but goes through mean_hw.
TEST(FusedOps, Bf16AndFp32TrainingStepsSameBitsAsLibtorch) {
  for (const std::string precision : {"bf16", "fp32"}) {
    for (const std::string backbone : {"convnet-s", "convnet-m", "resnet18"}) {
      std::vector<std::vector<torch::Tensor>> params;
      for (bool fused : {false, true}) {
        FusedSwitch s(fused);
        torch::manual_seed(11);
        models::ModelSpec spec;
        spec.backbone = backbone;
        models::EmbeddingModel model(spec);
        models::to_channels_last(*model);
        model->train();
        std::vector<torch::Tensor> ps;
        for (auto& p : model->parameters())
          if (p.requires_grad()) ps.push_back(p);
        torch::optim::Adam opt(ps, torch::optim::AdamOptions(1e-2));
        for (int step = 0; step < 3; ++step) {
          torch::manual_seed(100 + step);
          const auto x = torch::randn({8, 1, 28, 28});
          const auto labels = torch::randint(0, 10, {8}, torch::kInt64);
          torch::Tensor e;
          {
            models::ForwardPrecision cast(precision);
            e = model->forward(x);
          }
          if (step == 0) {  // the fused functions ran where they apply, libtorch's ops otherwise
            const auto nodes = graph_nodes(e);
            const bool convnet = backbone != "resnet18";  // resnet18's stem pools 3x3: libtorch's op
            EXPECT_EQ(has_node(nodes, "PoolReluFn"), fused && convnet) << precision << " " << backbone;
            EXPECT_EQ(has_node(nodes, "MaxPool2DWithIndicesBackward"), !(fused && convnet)) << precision << " " << backbone;
            EXPECT_EQ(has_node(nodes, "MeanHwFn"), fused) << precision << " " << backbone;
          }
          const auto loss = torch::cross_entropy_loss(model->classifier->forward(e.to(torch::kFloat)), labels);
          opt.zero_grad();
          loss.backward();
          opt.step();
        }
        std::vector<torch::Tensor> got;
        for (auto& p : model->parameters()) got.push_back(p.detach().clone());
        for (auto& b : model->buffers()) got.push_back(b.detach().clone());
        params.push_back(got);
      }
      ASSERT_EQ(params[0].size(), params[1].size());
      for (size_t i = 0; i < params[0].size(); ++i)
        expect_same_bits(params[1][i], params[0][i], precision + " " + backbone + " tensor " + std::to_string(i));
    }
  }
}

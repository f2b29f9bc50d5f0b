// FusedAdam against torch::optim::Adam: the same parameters, gradients and learning-rate
// schedule must give the same parameters and optimizer state (up to float rounding of
// the fused expression), and the state must load into torch's Adam (checkpoints).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>

#include "dualtune/engine/fused_adam.h"

using dualtune::engine::FusedAdam;

namespace {

// A small set of parameters in the shapes and layouts training uses: a channels-last
// conv weight, a vector, a matrix, and a parameter without a gradient this step.
std::vector<torch::Tensor> make_params() {
  torch::manual_seed(3);
  std::vector<torch::Tensor> ps{torch::randn({8, 3, 3, 3}).contiguous(torch::MemoryFormat::ChannelsLast),
                                torch::randn({8}), torch::randn({10, 16}), torch::randn({5})};
  for (auto& p : ps) p.requires_grad_(true);
  return ps;
}

std::vector<torch::Tensor> clone_params(const std::vector<torch::Tensor>& ps) {
  std::vector<torch::Tensor> out;
  for (const auto& p : ps) out.push_back(p.detach().clone().requires_grad_(true));
  return out;
}

double max_rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / (b.abs().max() + 1e-12)).item<double>();
}

const torch::optim::AdamParamState& adam_state(torch::optim::Optimizer& opt, const torch::Tensor& p) {
  return static_cast<const torch::optim::AdamParamState&>(
      *opt.state().at(c10::guts::to_string(p.unsafeGetTensorImpl())));
}

}  // namespace

TEST(FusedAdam, MatchesTorchAdamWithWeightDecayOverManySteps) {
  auto a = make_params();
  auto b = clone_params(a);
  const auto opts = torch::optim::AdamOptions(1e-2).weight_decay(5e-4);
  torch::optim::Adam reference(a, opts);
  FusedAdam fused(b, opts);
  torch::manual_seed(7);
  for (int step = 0; step < 25; ++step) {
    const double lr = 1e-2 * 0.5 * (1 + std::cos(M_PI * step / 25.0));  // the cosine schedule
    for (auto* opt : std::initializer_list<torch::optim::Optimizer*>{&reference, &fused})
      for (auto& g : opt->param_groups()) g.options().set_lr(lr);
    for (size_t i = 0; i < a.size(); ++i) {
      if (i == 3 && step % 2 == 0) {  // no gradient this step: neither optimizer touches it
        a[i].mutable_grad() = torch::Tensor();
        b[i].mutable_grad() = torch::Tensor();
        continue;
      }
      // Gradients of various magnitudes, the same for both (in the parameter's layout).
      const auto g = torch::randn_like(a[i]) * std::pow(10.0, static_cast<double>(step % 5) - 2);
      a[i].mutable_grad() = g.clone();
      b[i].mutable_grad() = g.clone();
    }
    reference.step();
    fused.step();
    ASSERT_TRUE(fused.last_step_fused()) << "step " << step << " took torch's per-tensor path";
  }
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_LT(max_rel_diff(b[i].detach(), a[i].detach()), 1e-6) << "parameter " << i;
    const auto& sa = adam_state(reference, a[i]);
    const auto& sb = adam_state(fused, b[i]);
    EXPECT_EQ(sb.step(), sa.step()) << "parameter " << i;
    EXPECT_LT(max_rel_diff(sb.exp_avg(), sa.exp_avg()), 1e-6) << "parameter " << i;
    EXPECT_LT(max_rel_diff(sb.exp_avg_sq(), sa.exp_avg_sq()), 1e-6) << "parameter " << i;
  }
  EXPECT_EQ(adam_state(fused, b[3]).step(), 12);  // odd steps only
  // The update moved the parameters (the comparison above is not between two no-ops).
  EXPECT_GT(max_rel_diff(b[2].detach(), make_params()[2]), 1e-2);
}

TEST(FusedAdam, StateLoadsIntoTorchAdam) {
  auto a = make_params();
  FusedAdam fused(a, torch::optim::AdamOptions(1e-3).weight_decay(5e-4));
  for (auto& p : a) p.mutable_grad() = torch::ones_like(p);
  fused.step();
  fused.step();
  std::stringstream buf;
  {
    torch::serialize::OutputArchive out;
    fused.save(out);
    out.save_to(buf);
  }
  auto b = clone_params(a);
  torch::optim::Adam loaded(b, torch::optim::AdamOptions(1e-3).weight_decay(5e-4));
  torch::serialize::InputArchive in;
  in.load_from(buf);
  loaded.load(in);
  for (size_t i = 0; i < a.size(); ++i) {
    const auto& sa = adam_state(fused, a[i]);
    const auto& sb = adam_state(loaded, b[i]);
    EXPECT_EQ(sb.step(), 2);
    EXPECT_TRUE(torch::equal(sb.exp_avg(), sa.exp_avg()));
    EXPECT_TRUE(torch::equal(sb.exp_avg_sq(), sa.exp_avg_sq()));
  }
}

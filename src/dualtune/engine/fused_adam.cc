#include "dualtune/engine/fused_adam.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

namespace dualtune::engine {
namespace {

// One parameter's slice of the fused pass; the scalars are those torch::optim::Adam
// passes to its kernels (computed in double, applied in float).
struct Slice {
  float* p;
  const float* g;
  float* m;
  float* v;
  int64_t n;
  float weight_decay, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, neg_step_size, bias_correction2_sqrt;
};

// The four tensors can be walked as one flat array in the same element order.
bool same_dense_layout(const torch::Tensor& a, const torch::Tensor& b) {
  return b.defined() && b.scalar_type() == torch::kFloat && b.sizes() == a.sizes() && b.strides() == a.strides();
}

void update(const Slice& s, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    float g = s.g[i];
    if (s.weight_decay != 0.0f) g = g + s.weight_decay * s.p[i];  // grad.add(p, wd)
    const float m = s.m[i] * s.beta1 + s.one_minus_beta1 * g;     // exp_avg.mul_(β1).add_(g, 1 − β1)
    const float v = s.v[i] * s.beta2 + s.one_minus_beta2 * g * g;  // exp_avg_sq.mul_(β2).addcmul_(g, g, 1 − β2)
    const float denom = std::sqrt(v) / s.bias_correction2_sqrt + s.eps;
    s.m[i] = m;
    s.v[i] = v;
    s.p[i] = s.p[i] + s.neg_step_size * m / denom;  // p.addcdiv_(m, denom, −step_size)
  }
}

}  // namespace

torch::Tensor FusedAdam::step(LossClosure closure) {
  last_step_fused_ = false;
  // Anything the fused pass does not cover goes through torch's own step, for all parameters.
  for (auto& group : param_groups_) {
    const auto& options = static_cast<const torch::optim::AdamOptions&>(group.options());
    if (options.amsgrad()) return torch::optim::Adam::step(closure);
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const auto& g = p.grad();
      if (g.is_sparse() || p.scalar_type() != torch::kFloat || !p.is_non_overlapping_and_dense() ||
          !same_dense_layout(p, g))
        return torch::optim::Adam::step(closure);
      auto it = state_.find(c10::guts::to_string(p.unsafeGetTensorImpl()));
      if (it != state_.end()) {
        // State loaded from a checkpoint keeps the file's strides; the same values in the
        // parameter's layout (e.g. channels-last) let the pass walk all four together.
        auto& st = static_cast<torch::optim::AdamParamState&>(*it->second);
        for (auto* t : {&st.exp_avg(), &st.exp_avg_sq()}) {
          if (!t->defined() || t->sizes() != p.sizes() || t->scalar_type() != torch::kFloat)
            return torch::optim::Adam::step(closure);
          if (!same_dense_layout(p, *t)) *t = torch::empty_like(p).copy_(*t);
        }
      }
    }
  }

  last_step_fused_ = true;
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  std::vector<Slice> slices;
  std::vector<int64_t> offsets{0};  // slice k covers [offsets[k], offsets[k + 1]) of the flat index
  for (auto& group : param_groups_) {
    const auto& options = static_cast<const torch::optim::AdamOptions&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const std::string key = c10::guts::to_string(p.unsafeGetTensorImpl());
      if (state_.find(key) == state_.end()) {
        auto fresh = std::make_unique<torch::optim::AdamParamState>();
        fresh->step(0);
        fresh->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        fresh->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        state_[key] = std::move(fresh);
      }
      auto& st = static_cast<torch::optim::AdamParamState&>(*state_[key]);
      st.step(st.step() + 1);
      const double beta1 = std::get<0>(options.betas()), beta2 = std::get<1>(options.betas());
      const double bias_correction1 = 1 - std::pow(beta1, st.step());
      const double bias_correction2 = 1 - std::pow(beta2, st.step());
      slices.push_back({p.data_ptr<float>(), p.grad().data_ptr<float>(), st.exp_avg().data_ptr<float>(),
                        st.exp_avg_sq().data_ptr<float>(), p.numel(), static_cast<float>(options.weight_decay()),
                        static_cast<float>(beta1), static_cast<float>(1 - beta1), static_cast<float>(beta2),
                        static_cast<float>(1 - beta2), static_cast<float>(options.eps()),
                        static_cast<float>(-(options.lr() / bias_correction1)),
                        static_cast<float>(std::sqrt(bias_correction2))});
      offsets.push_back(offsets.back() + p.numel());
    }
  }
  // One parallel pass over the concatenation of all slices.
  at::parallel_for(0, offsets.back(), int64_t{1} << 14, [&](int64_t begin, int64_t end) {
    auto k = static_cast<size_t>(std::upper_bound(offsets.begin(), offsets.end(), begin) - offsets.begin() - 1);
    for (int64_t i = begin; i < end; ++k) {
      const int64_t stop = std::min(end, offsets[k + 1]);
      update(slices[k], i - offsets[k], stop - offsets[k]);
      i = stop;
    }
  });
  return loss;
}

}  // namespace dualtune::engine

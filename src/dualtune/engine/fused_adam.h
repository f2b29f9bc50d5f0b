#pragma once
// torch::optim::Adam with a fused, multi-tensor step: the same algorithm (Kingma & Ba
// with L2 weight decay added to the gradient, as torch.optim.Adam, not AdamW), state and
// checkpoint format, computed in one parallel pass over all parameters instead of ~8
// ATen kernels (and their temporaries) per parameter. For each element, with t the
// parameter's step count:
//   g  = grad + wd·p
//   m  = β1·m + (1 − β1)·g
//   v  = β2·v + (1 − β2)·g²
//   p  = p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)
// Optimizer state laid out differently from its parameter (a checkpoint written before
// channels-last) is copied into the parameter's layout first. amsgrad, sparse gradients
// and gradients laid out differently from their parameter take torch::optim::Adam's own
// per-tensor path.
#include <torch/torch.h>

namespace dualtune::engine {

class FusedAdam : public torch::optim::Adam {
 public:
  FusedAdam(std::vector<torch::Tensor> params, torch::optim::AdamOptions options)
      : torch::optim::Adam(std::move(params), options) {}
  torch::Tensor step(LossClosure closure = nullptr) override;
  /// Whether the last step() took the fused pass (false: torch's per-tensor step).
  bool last_step_fused() const { return last_step_fused_; }

 private:
  bool last_step_fused_ = false;
};

}  // namespace dualtune::engine

#pragma once
#include <torch/torch.h>

namespace dualtune::losses {

/// CosFace (Wang et al. 2018): L = CE(s·(cos θ − m·onehot(y)), y)
/// cosine: B × C cos(e, W_c), labels: B.
torch::Tensor cosface_loss(const torch::Tensor& cosine, const torch::Tensor& labels, double s, double m);

/// ArcFace (Deng et al. 2019): L = CE(s·cos(θ_y + m) for the target, s·cos θ otherwise, y).
/// θ = acos(clamp(cos, −1+1e-7, 1−1e-7)).
torch::Tensor arcface_loss(const torch::Tensor& cosine, const torch::Tensor& labels, double s, double m);

}  // namespace dualtune::losses

#include "dualtune/losses/margin_softmax.h"

namespace dualtune::losses {

torch::Tensor cosface_loss(const torch::Tensor& cosine, const torch::Tensor& labels, double s, double m) {
  const auto onehot = torch::zeros_like(cosine).scatter_(1, labels.unsqueeze(1), 1.0);
  return torch::nn::functional::cross_entropy(s * (cosine - m * onehot), labels);
}

torch::Tensor arcface_loss(const torch::Tensor& cosine, const torch::Tensor& labels, double s, double m) {
  const auto onehot = torch::zeros_like(cosine).scatter_(1, labels.unsqueeze(1), 1.0);
  const auto theta = torch::acos(cosine.clamp(-1.0 + 1e-7, 1.0 - 1e-7));
  const auto logits = s * torch::cos(theta + m * onehot);
  return torch::nn::functional::cross_entropy(logits, labels);
}

}  // namespace dualtune::losses

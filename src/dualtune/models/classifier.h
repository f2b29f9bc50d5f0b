#pragma once
// Classifier over the training classes, weight W: C × D.
//   softmax:          logits = e Wᵀ                       (bias-free linear)
//   cosface/arcface:  logits = s · cos(e, W_c) = s · norm(e) norm(W)ᵀ (margins are
//                     applied by the loss, see losses/margin_softmax.h)
#include <torch/torch.h>

#include <string>

namespace dualtune::models {

struct ClassifierImpl : torch::nn::Module {
  ClassifierImpl(int64_t dim, int64_t num_classes, bool normalized, double scale);
  /// e: B × D -> B × C
  torch::Tensor forward(const torch::Tensor& e);
  /// cos(e, W_c), B × C (normalised classifiers only)
  torch::Tensor cosine(const torch::Tensor& e);

  torch::Tensor weight;
  bool normalized;
  double scale;
};
TORCH_MODULE(Classifier);

}  // namespace dualtune::models

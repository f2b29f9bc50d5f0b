#pragma once
// A frozen class head (the old model's classifier Wo, or BCT's extension of it) and the
// component cropping every old-vs-new comparison uses.
//
// Dimension mismatch (new Dn vs old Do): when Dn ≠ Do every old-vs-new comparison uses the
// first k = min(Dn, Do) components of both sides.
#include <torch/torch.h>

namespace dualtune::models {

/// x[:, :k]
inline torch::Tensor first_components(const torch::Tensor& x, int64_t k) {
  return x.size(1) == k ? x : x.narrow(1, 0, k);
}

/// A frozen class head W (C × D) as the old model (or BCT's extended classifier) scores:
///   linear: logits = e Wᵀ;  normalised: logits = s · norm(e) norm(W)ᵀ.
/// Inputs are cropped to the first min(D_e, D_W) components of both.
struct ClassHead {
  torch::Tensor weight;  ///< C × D, requires_grad = false
  bool normalized = false;
  double scale = 1.0;

  torch::Tensor logits(const torch::Tensor& e) const;
};

}  // namespace dualtune::models

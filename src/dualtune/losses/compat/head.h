#pragma once
// Shared pieces of the compatibility losses.
//
// Dimension mismatch (DESIGN.md): when Dn ≠ Do every old-vs-new comparison uses the
// first k = min(Dn, Do) components of both sides.
#include <torch/torch.h>

namespace dualtune::losses::compat {

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

/// Cross-entropy over the rows whose target is ≥ 0; a zero (still differentiable) loss when none.
torch::Tensor masked_cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets);

}  // namespace dualtune::losses::compat

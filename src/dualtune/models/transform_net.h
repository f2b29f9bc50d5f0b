#pragma once
// Forward transformation h (FCT: Ramanujan et al., "Forward Compatible Training for
// Large-Scale Embedding Retrieval Systems", CVPR 2022; the layout of apple/ml-fct's
// MLP_BN_SIDE_PROJECTION, whose 1×1 convolutions on B × D × 1 × 1 are linear layers):
//   p1     old embedding   Do → 2·Do → 2·Dn               (Linear + BatchNorm1d + ReLU each)
//   p2     side information Ds → 2·Ds → 2·Dn              (same blocks; only when Ds > 0)
//   mixer  [p1, p2] → W → … (depth blocks of width W) → Dn (the last layer plain Linear)
// h maps a stored old embedding (plus, optionally, a small side-information embedding
// stored with the item at indexing time) into the new model's embedding space, so an
// old gallery is upgraded without images and without running the new backbone.
#include <torch/torch.h>

#include <cstdint>

namespace dualtune::models {

struct ForwardTransformSpec {
  int64_t old_dim = 128;  ///< Do
  int64_t new_dim = 128;  ///< Dn
  int64_t side_dim = 0;   ///< Ds, 0 = no side information
  int64_t width = 2048;   ///< W, width of the mixer's hidden blocks
  int64_t depth = 2;      ///< number of hidden blocks of the mixer (>= 1)
};

struct ForwardTransformImpl : torch::nn::Module {
  explicit ForwardTransformImpl(const ForwardTransformSpec& spec);
  /// old: B × Do; side: B × Ds (undefined when spec.side_dim == 0) -> B × Dn.
  torch::Tensor forward(const torch::Tensor& old, const torch::Tensor& side = {});

  ForwardTransformSpec spec;
  torch::nn::Sequential p1{nullptr}, p2{nullptr}, mixer{nullptr};
};
TORCH_MODULE(ForwardTransform);

}  // namespace dualtune::models

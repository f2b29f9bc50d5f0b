#pragma once
#include <torch/torch.h>

namespace dualtune::losses {

/// Batch-hard triplet loss (Hermans et al. 2017), Euclidean distance d:
///   L = mean_a max(0, max_{p: y_p = y_a, p ≠ a} d(a, p) − min_{n: y_n ≠ y_a} d(a, n) + margin)
/// Anchors without a positive or a negative in the batch are skipped (use a P×K sampler).
/// e: B × D, labels: B. Returns 0 when no anchor is valid.
torch::Tensor batch_hard_triplet_loss(const torch::Tensor& e, const torch::Tensor& labels, double margin);

}  // namespace dualtune::losses

#pragma once
#include <torch/torch.h>

namespace dualtune::losses {

/// Cross-entropy with label smoothing ε over C classes (Szegedy et al. 2016):
///   q = (1 − ε)·onehot(y) + ε/C,   L = mean_i  −Σ_c q_ic · log softmax(z_i)_c
/// logits: B × C, labels: B (int64 in [0, C)).
torch::Tensor label_smoothing_cross_entropy(const torch::Tensor& logits, const torch::Tensor& labels, double epsilon);

/// Cross-entropy over the rows whose target is ≥ 0 (a target of −1 marks a class the
/// scoring head does not know); a zero, still differentiable, loss when no row has one.
torch::Tensor masked_cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets);

}  // namespace dualtune::losses

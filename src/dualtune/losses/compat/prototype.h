#pragma once
// Prototype transfer (Dual-Tuning): pull the new embedding toward its class prototype
// in the old space, P[c] = mean over the new training set of eo(x) for x of class c
// (all classes, frozen). en is cropped to k = min(Dn, Do) components, P likewise.
#include <torch/torch.h>

namespace dualtune::losses::compat {

/// Form `triplet`, d = Euclidean distance:
///   L = mean_i max(0, d(en_i, P[y_i]) − Σ_{k≠y_i} w_ik d(en_i, P[k]) + m),
///   w_i = softmax over the negatives k ≠ y_i of −d(en_i, P[k]).
/// en: B × Dn, prototypes: C × Do, labels: B (new labels).
torch::Tensor prototype_triplet_loss(const torch::Tensor& en, const torch::Tensor& prototypes,
                                     const torch::Tensor& labels, double margin);

/// Form `softmax`: L = CE(s · cos(en_i, P), y_i).
torch::Tensor prototype_softmax_loss(const torch::Tensor& en, const torch::Tensor& prototypes,
                                     const torch::Tensor& labels, double scale);

}  // namespace dualtune::losses::compat

#pragma once
// Prototype transfer (Dual-Tuning): pull the new embedding toward its class prototype
// in the old space, P[c] = mean over the new training set of eo(x) for x of class c
// (all classes, frozen). en is cropped to k = min(Dn, Do) components, P likewise.
#include <torch/torch.h>

namespace dualtune::losses::compat {

/// Form `triplet`, d = Euclidean distance in units of u (u = 1: old-space units):
///   L = mean_i max(0, d(en_i, P[y_i]) − Σ_{k≠y_i} w_ik d(en_i, P[k]) + m),
///   w_i = softmax over the negatives k ≠ y_i of −d(en_i, P[k]).
/// Both the margin m and the softmin's temperature are in units of u.
/// en: B × Dn, prototypes: C × Do, labels: B (new labels).
torch::Tensor prototype_triplet_loss(const torch::Tensor& en, const torch::Tensor& prototypes,
                                     const torch::Tensor& labels, double margin, double unit = 1.0);

/// The old space's class spacing, a unit that follows the old model's embedding scale:
///   s = (1 / C) Σ_c min_{k≠c} d(P[c], P[k])   over the first k components of P (C ≥ 2).
/// With u = s the triplet term is scale-free: rescaling the old space (and en with it)
/// leaves L unchanged, where with u = 1 the margin and the softmin temperature are
/// fixed distances that a larger old space makes negligible.
double prototype_spacing(const torch::Tensor& prototypes, int64_t components);

/// Form `softmax`: L = CE(s · cos(en_i, P), y_i).
torch::Tensor prototype_softmax_loss(const torch::Tensor& en, const torch::Tensor& prototypes,
                                     const torch::Tensor& labels, double scale);

/// Form `regress`: the new embedding regressed onto the direction of its class's old
/// prototype, with no negatives and no margin, so it does not switch off once classes
/// are separated (the triplet form does, on 1,500 classes: docs/RESULTS.md):
///   L = mean_i ‖en_i/|en_i| − P[y_i]/|P[y_i]|‖² = mean_i (2 − 2 cos(en_i, P[y_i])).
/// The class-centre alignment of LCE (Meng et al., "Learning Compatible Embeddings",
/// ICCV 2021) without its transformation; the L2 baseline's loss with the class's old
/// centroid as the target in place of the image's own old embedding.
torch::Tensor prototype_regression_loss(const torch::Tensor& en, const torch::Tensor& prototypes,
                                        const torch::Tensor& labels);

}  // namespace dualtune::losses::compat

#pragma once
// Cross-model contrastive term: the regression-alleviating compatible loss of
// Hot-Refresh (RACT; Zhang et al., "Hot-Refresh Model Upgrades with Regression-Free
// Compatible Training in Image Retrieval", ICLR 2022). The new embedding of an image is
// pulled to the OLD embedding of the same image and pushed away from the old embeddings
// of other classes (and, with new_negatives, from the new embeddings of other classes):
// it asks for what new→old top-1 measures — the nearest old gallery item of a new query
// is of its class — at the level of single images, where BCT works on class rows.
//   L = −(1/B) Σ_i log( e^{c(en_i,eo_i)/τ} / ( e^{c(en_i,eo_i)/τ} + Σ_{j: y_j≠y_i} e^{c(en_i,eo_j)/τ}
//                                              + [new_negatives] Σ_{j: y_j≠y_i} e^{c(en_i,en_j)/τ} ) )
// over the batch; same-class items other than i are in neither sum. c = cosine on the
// first k = min(Dn, Do) components; eo is frozen (no gradient reaches the old model).
#include <torch/torch.h>

namespace dualtune::losses::compat {

/// en: B × Dn (trainable), eo: B × Do (old, detached here), labels: B; temperature τ > 0.
torch::Tensor cross_model_contrastive_loss(const torch::Tensor& en, const torch::Tensor& eo,
                                           const torch::Tensor& labels, double temperature, bool new_negatives);

}  // namespace dualtune::losses::compat

#pragma once
// Mutual structural regularization (Dual-Tuning): each model's classifier regularizes
// the other model's features.
#include <torch/torch.h>

#include "dualtune/models/class_head.h"
#include "dualtune/models/classifier.h"

namespace dualtune::losses::compat {

/// L_n2o = CE(Wo · en, n2o(y)) over the samples whose class the old model knows
/// (old_targets ≥ 0). Wo frozen; the gradient reaches the new model only.
/// en: B × Dn, old_targets: B (old label or −1).
torch::Tensor n2o_loss(const torch::Tensor& en, const models::ClassHead& old_head, const torch::Tensor& old_targets);

/// L_o2n = CE(Wn · sg(eo), y) over all samples: old embeddings (cropped/zero-padded to
/// Dn) through the trainable new classifier; the gradient reaches Wn only.
/// eo: B × Do, labels: B new labels.
torch::Tensor o2n_loss(const torch::Tensor& eo, models::ClassifierImpl& new_classifier, const torch::Tensor& labels);

/// eo cropped to its first min(Do, dn) components and zero-padded to dn.
torch::Tensor to_new_width(const torch::Tensor& eo, int64_t dn);

}  // namespace dualtune::losses::compat

#pragma once
#include <torch/torch.h>

#include "dualtune/models/class_head.h"
#include "dualtune/models/classifier.h"

namespace dualtune::losses::compat {

/// Component mixing (ablation): h = b ⊙ en + (1 − b) ⊙ sg(eo) on the first k = min(Dn, Do)
/// components, b_i ~ Bernoulli(ρ) per component and sample;
///   L_mix = CE(Wn · h, y) + CE(Wo · h, n2o(y)) (second term on known classes only).
torch::Tensor mix_loss(const torch::Tensor& en, const torch::Tensor& eo, models::ClassifierImpl& new_classifier,
                       const models::ClassHead& old_head, const torch::Tensor& labels, const torch::Tensor& old_targets,
                       double rho);

}  // namespace dualtune::losses::compat

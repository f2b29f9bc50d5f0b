#pragma once
#include <torch/torch.h>

namespace dualtune::losses::compat {

/// L2 compatibility: L = mean_i ‖norm(en_i[:k]) − norm(eo_i[:k])‖², k = min(Dn, Do).
/// en: B × Dn (new, trainable), eo: B × Do (old, no grad).
torch::Tensor l2_loss(const torch::Tensor& en, const torch::Tensor& eo);

}  // namespace dualtune::losses::compat

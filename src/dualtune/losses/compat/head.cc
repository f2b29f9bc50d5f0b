#include "dualtune/losses/compat/head.h"

namespace F = torch::nn::functional;

namespace dualtune::losses::compat {

torch::Tensor ClassHead::logits(const torch::Tensor& e) const {
  const int64_t k = std::min(e.size(1), weight.size(1));
  auto x = first_components(e, k);
  auto w = first_components(weight, k);
  if (!normalized) return torch::mm(x, w.t());
  return scale * torch::mm(F::normalize(x, F::NormalizeFuncOptions().dim(1)),
                           F::normalize(w, F::NormalizeFuncOptions().dim(1)).t());
}

torch::Tensor masked_cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets) {
  const auto keep = targets.ge(0);
  if (keep.sum().item<int64_t>() == 0) return logits.sum() * 0.0;
  const auto idx = keep.nonzero().squeeze(1);
  return F::cross_entropy(logits.index_select(0, idx), targets.index_select(0, idx));
}

}  // namespace dualtune::losses::compat

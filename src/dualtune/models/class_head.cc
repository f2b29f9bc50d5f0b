#include "dualtune/models/class_head.h"

namespace F = torch::nn::functional;

namespace dualtune::models {

torch::Tensor ClassHead::logits(const torch::Tensor& e) const {
  const int64_t k = std::min(e.size(1), weight.size(1));
  auto x = first_components(e, k);
  auto w = first_components(weight, k);
  if (!normalized) return torch::mm(x, w.t());
  return scale * torch::mm(F::normalize(x, F::NormalizeFuncOptions().dim(1)),
                           F::normalize(w, F::NormalizeFuncOptions().dim(1)).t());
}

}  // namespace dualtune::models

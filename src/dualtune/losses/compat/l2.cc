#include "dualtune/losses/compat/l2.h"

#include "dualtune/models/class_head.h"

namespace F = torch::nn::functional;

namespace dualtune::losses::compat {

torch::Tensor l2_loss(const torch::Tensor& en, const torch::Tensor& eo) {
  const int64_t k = std::min(en.size(1), eo.size(1));
  const auto a = F::normalize(models::first_components(en, k), F::NormalizeFuncOptions().dim(1));
  const auto b = F::normalize(models::first_components(eo, k), F::NormalizeFuncOptions().dim(1));
  return (a - b).pow(2).sum(1).mean();
}

}  // namespace dualtune::losses::compat

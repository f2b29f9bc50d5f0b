#include "dualtune/losses/compat/mix.h"
#include "dualtune/losses/cross_entropy.h"

#include "dualtune/losses/compat/mutual.h"

namespace F = torch::nn::functional;

namespace dualtune::losses::compat {

torch::Tensor mix_loss(const torch::Tensor& en, const torch::Tensor& eo, models::ClassifierImpl& new_classifier,
                       const models::ClassHead& old_head, const torch::Tensor& labels, const torch::Tensor& old_targets,
                       double rho) {
  const int64_t k = std::min(en.size(1), eo.size(1));
  const auto xn = models::first_components(en, k);
  const auto xo = models::first_components(eo.detach(), k);
  const auto b = torch::bernoulli(torch::full_like(xn, rho));
  const auto h = b * xn + (1.0 - b) * xo;
  const auto to_new = F::cross_entropy(new_classifier.forward(to_new_width(h, new_classifier.weight.size(1))), labels);
  return to_new + masked_cross_entropy(old_head.logits(h), old_targets);
}

}  // namespace dualtune::losses::compat

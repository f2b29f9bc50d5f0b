#include "dualtune/losses/compat/mutual.h"
#include "dualtune/losses/cross_entropy.h"

namespace F = torch::nn::functional;

namespace dualtune::losses::compat {

torch::Tensor n2o_loss(const torch::Tensor& en, const models::ClassHead& old_head, const torch::Tensor& old_targets) {
  return masked_cross_entropy(old_head.logits(en), old_targets);
}

torch::Tensor to_new_width(const torch::Tensor& eo, int64_t dn) {
  const int64_t k = std::min(eo.size(1), dn);
  auto x = models::first_components(eo, k);
  if (k < dn) x = F::pad(x, F::PadFuncOptions({0, dn - k}));
  return x;
}

torch::Tensor o2n_loss(const torch::Tensor& eo, models::ClassifierImpl& new_classifier, const torch::Tensor& labels) {
  const auto x = to_new_width(eo.detach(), new_classifier.weight.size(1));
  return F::cross_entropy(new_classifier.forward(x), labels);
}

}  // namespace dualtune::losses::compat

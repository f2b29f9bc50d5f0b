#include "dualtune/losses/compat/contrastive.h"

#include <limits>

#include "dualtune/models/class_head.h"

namespace F = torch::nn::functional;

namespace dualtune::losses::compat {

torch::Tensor cross_model_contrastive_loss(const torch::Tensor& en, const torch::Tensor& eo,
                                           const torch::Tensor& labels, double temperature, bool new_negatives) {
  const int64_t k = std::min(en.size(1), eo.size(1)), b = en.size(0);
  const auto x = F::normalize(models::first_components(en, k), F::NormalizeFuncOptions().dim(1));
  const auto o = F::normalize(models::first_components(eo.detach(), k), F::NormalizeFuncOptions().dim(1));
  const auto same = labels.unsqueeze(1).eq(labels.unsqueeze(0));  // B × B, diagonal true
  const auto eye = torch::eye(b, torch::TensorOptions().dtype(torch::kBool).device(en.device()));
  const double inf = std::numeric_limits<double>::infinity();
  // New → old: the positive (diagonal) and the other-class old embeddings.
  auto logits = (torch::mm(x, o.t()) / temperature).masked_fill(same.logical_and(eye.logical_not()), -inf);
  if (new_negatives) logits = torch::cat({logits, (torch::mm(x, x.t()) / temperature).masked_fill(same, -inf)}, 1);
  return F::cross_entropy(logits, torch::arange(b, labels.options()));
}

}  // namespace dualtune::losses::compat

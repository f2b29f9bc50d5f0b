#include "dualtune/losses/cross_entropy.h"

namespace F = torch::nn::functional;

namespace dualtune::losses {

torch::Tensor label_smoothing_cross_entropy(const torch::Tensor& logits, const torch::Tensor& labels, double epsilon) {
  const auto logp = torch::log_softmax(logits, 1);
  const auto nll = -logp.gather(1, labels.unsqueeze(1)).squeeze(1);
  if (epsilon == 0.0) return nll.mean();
  const auto uniform = -logp.mean(1);
  return ((1.0 - epsilon) * nll + epsilon * uniform).mean();
}

torch::Tensor masked_cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets) {
  const auto keep = targets.ge(0);
  if (keep.sum().item<int64_t>() == 0) return logits.sum() * 0.0;
  const auto idx = keep.nonzero().squeeze(1);
  return F::cross_entropy(logits.index_select(0, idx), targets.index_select(0, idx));
}

}  // namespace dualtune::losses

#include "dualtune/losses/cross_entropy.h"

namespace dualtune::losses {

torch::Tensor label_smoothing_cross_entropy(const torch::Tensor& logits, const torch::Tensor& labels, double epsilon) {
  const auto logp = torch::log_softmax(logits, 1);
  const auto nll = -logp.gather(1, labels.unsqueeze(1)).squeeze(1);
  if (epsilon == 0.0) return nll.mean();
  const auto uniform = -logp.mean(1);
  return ((1.0 - epsilon) * nll + epsilon * uniform).mean();
}

}  // namespace dualtune::losses

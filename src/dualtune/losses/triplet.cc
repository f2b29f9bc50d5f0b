#include "dualtune/losses/triplet.h"

namespace dualtune::losses {

torch::Tensor batch_hard_triplet_loss(const torch::Tensor& e, const torch::Tensor& labels, double margin) {
  const auto n = e.size(0);
  // Squared distances clamped before sqrt so the gradient at 0 stays finite.
  const auto sq = e.pow(2).sum(1, true);
  const auto dist = (sq + sq.t() - 2.0 * torch::mm(e, e.t())).clamp_min(1e-12).sqrt();
  const auto same = labels.unsqueeze(0).eq(labels.unsqueeze(1));
  const auto eye = torch::eye(n, torch::TensorOptions().dtype(torch::kBool).device(e.device()));
  const auto pos_mask = same.logical_and(eye.logical_not());
  const auto neg_mask = same.logical_not();
  const double big = 1e9;
  const auto hardest_pos = torch::where(pos_mask, dist, torch::full_like(dist, -big)).amax(1);
  const auto hardest_neg = torch::where(neg_mask, dist, torch::full_like(dist, big)).amin(1);
  const auto valid = pos_mask.any(1).logical_and(neg_mask.any(1));
  if (valid.sum().item<int64_t>() == 0) return (e * 0).sum();
  const auto per_anchor = torch::relu(hardest_pos - hardest_neg + margin);
  return per_anchor.masked_select(valid).mean();
}

}  // namespace dualtune::losses

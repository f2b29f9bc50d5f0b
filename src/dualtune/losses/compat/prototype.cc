#include "dualtune/losses/compat/prototype.h"

#include "dualtune/losses/compat/l2.h"
#include "dualtune/models/class_head.h"

namespace F = torch::nn::functional;

namespace dualtune::losses::compat {

torch::Tensor prototype_triplet_loss(const torch::Tensor& en, const torch::Tensor& prototypes,
                                     const torch::Tensor& labels, double margin, double unit) {
  TORCH_CHECK(unit > 0, "prototype distance unit must be > 0, got ", unit);
  const int64_t k = std::min(en.size(1), prototypes.size(1));
  const auto x = models::first_components(en, k);
  const auto p = models::first_components(prototypes, k);
  const auto sq = (x.pow(2).sum(1, true) + p.pow(2).sum(1).unsqueeze(0) - 2.0 * torch::mm(x, p.t())).clamp_min(1e-12);
  const auto d = sq.sqrt() / unit;  // B × C
  const auto pos_mask = torch::zeros_like(d, torch::kBool).scatter_(1, labels.unsqueeze(1), true);
  const auto d_pos = d.gather(1, labels.unsqueeze(1)).squeeze(1);
  // softmax(−d) over the negatives only: the positive gets weight 0.
  const auto w = torch::softmax((-d).masked_fill(pos_mask, -std::numeric_limits<float>::infinity()), 1);
  const auto d_neg = (w * d.masked_fill(pos_mask, 0.0)).sum(1);
  return torch::relu(d_pos - d_neg + margin).mean();
}

double prototype_spacing(const torch::Tensor& prototypes, int64_t components) {
  TORCH_CHECK(prototypes.dim() == 2 && prototypes.size(0) >= 2, "prototype spacing needs at least 2 prototypes, got ",
              prototypes.sizes());
  const auto p = models::first_components(prototypes.to(torch::kFloat64), std::min(components, prototypes.size(1)));
  const int64_t n = p.size(0), block = 1024;  // blocks of rows: C × C distances would not fit for 100k classes
  double sum = 0;
  for (int64_t r = 0; r < n; r += block) {
    const int64_t rows = std::min(block, n - r);
    auto d = torch::cdist(p.narrow(0, r, rows), p);
    d.narrow(1, r, rows).fill_diagonal_(std::numeric_limits<double>::infinity());
    sum += std::get<0>(d.min(1)).sum().item<double>();
  }
  return sum / static_cast<double>(n);
}

torch::Tensor prototype_softmax_loss(const torch::Tensor& en, const torch::Tensor& prototypes,
                                     const torch::Tensor& labels, double scale) {
  const int64_t k = std::min(en.size(1), prototypes.size(1));
  const auto x = F::normalize(models::first_components(en, k), F::NormalizeFuncOptions().dim(1));
  const auto p = F::normalize(models::first_components(prototypes, k), F::NormalizeFuncOptions().dim(1));
  return F::cross_entropy(scale * torch::mm(x, p.t()), labels);
}

torch::Tensor prototype_regression_loss(const torch::Tensor& en, const torch::Tensor& prototypes,
                                        const torch::Tensor& labels) {
  return l2_loss(en, prototypes.index_select(0, labels));
}

}  // namespace dualtune::losses::compat

#include "dualtune/losses/compat/bct.h"
#include "dualtune/losses/cross_entropy.h"

#include "dualtune/util/error.h"

namespace dualtune::losses::compat {

ExtendedClassifier extend_old_classifier(const models::ClassHead& old_head, const torch::Tensor& prototypes,
                                         const std::vector<int64_t>& n2o, bool rescale) {
  const int64_t cn = prototypes.size(0);
  DT_CHECK(static_cast<int64_t>(n2o.size()) == cn, "n2o has ", n2o.size(), " entries, prototypes ", cn, " rows");
  ExtendedClassifier ext;
  ext.target.assign(cn, -1);
  torch::NoGradGuard no_grad;
  if (!old_head.weight.defined()) {
    ext.head.weight = prototypes.clone();
    for (int64_t c = 0; c < cn; ++c) ext.target[c] = c;
    ext.synthesized = cn;
    return ext;
  }
  const auto& wo = old_head.weight;
  DT_CHECK(wo.size(1) == prototypes.size(1), "old classifier width ", wo.size(1), " != old embedding size ",
           prototypes.size(1));
  ext.learned_row_norm = wo.norm(2, 1).mean().item<double>();
  std::vector<torch::Tensor> rows{wo};
  int64_t next = wo.size(0);
  for (int64_t c = 0; c < cn; ++c) {
    if (n2o[c] >= 0) {
      DT_CHECK(n2o[c] < wo.size(0), "n2o maps class ", c, " to old label ", n2o[c], " but the old classifier has ",
               wo.size(0), " rows");
      ext.target[c] = n2o[c];
      continue;
    }
    auto row = prototypes[c];
    if (rescale) row = row / row.norm().clamp_min(1e-12) * ext.learned_row_norm;
    rows.push_back(row.unsqueeze(0));
    ext.target[c] = next++;
    ++ext.synthesized;
  }
  ext.head.weight = torch::cat(rows, 0).detach();
  ext.head.normalized = old_head.normalized;
  ext.head.scale = old_head.scale;
  return ext;
}

torch::Tensor map_labels(const torch::Tensor& labels, const std::vector<int64_t>& table) {
  auto cpu = labels.to(torch::kCPU).contiguous();
  auto out = torch::empty_like(cpu);
  const auto* in = cpu.data_ptr<int64_t>();
  auto* o = out.data_ptr<int64_t>();
  for (int64_t i = 0; i < cpu.numel(); ++i) {
    DT_CHECK(in[i] >= 0 && in[i] < static_cast<int64_t>(table.size()), "label ", in[i], " outside [0, ", table.size(),
             ")");
    o[i] = table[in[i]];
  }
  return out.to(labels.device());
}

torch::Tensor bct_loss(const torch::Tensor& en, const torch::Tensor& labels, const ExtendedClassifier& ext) {
  return masked_cross_entropy(ext.head.logits(en), map_labels(labels, ext.target));
}

}  // namespace dualtune::losses::compat

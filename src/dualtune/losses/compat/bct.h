#pragma once
// BCT influence loss (Shen et al., CVPR 2020): L = CE(Wo' · en, y'), with Wo' the old
// classifier extended by one synthesized row per new class the old model never saw.
#include <torch/torch.h>

#include <vector>

#include "dualtune/models/class_head.h"

namespace dualtune::losses::compat {

struct ExtendedClassifier {
  models::ClassHead head;                     ///< (Co + U) × Do
  std::vector<int64_t> target;        ///< new label -> row of head (Cn entries)
  int64_t synthesized = 0;            ///< U
  double learned_row_norm = 0.0;      ///< mean ‖Wo_c‖ (0 when Wo is absent)
};

/// old_head: Wo (Co × Do) or an undefined weight when the old classifier is unknown;
/// prototypes: Cn × Do, P[c] = mean old embedding of new class c;
/// n2o: Cn entries, old label or −1.
/// Row for a known class c = Wo[n2o[c]]; for unknown c, a synthesized row P[c], scaled
/// to the mean norm of Wo's rows when rescale (‖row‖ = mean_c ‖Wo_c‖) — without it the
/// class-mean rows (norms ≫ learned rows) dominate the logits and BCT collapses.
/// Without Wo every row is the class mean P[c] (the classifier is synthesized whole).
ExtendedClassifier extend_old_classifier(const models::ClassHead& old_head, const torch::Tensor& prototypes,
                                         const std::vector<int64_t>& n2o, bool rescale);

/// CE(Wo'·en, target[y]) over the batch. en: B × Dn, labels: B new labels.
torch::Tensor bct_loss(const torch::Tensor& en, const torch::Tensor& labels, const ExtendedClassifier& ext);

/// new labels -> rows of ext (B).
torch::Tensor map_labels(const torch::Tensor& labels, const std::vector<int64_t>& table);

}  // namespace dualtune::losses::compat

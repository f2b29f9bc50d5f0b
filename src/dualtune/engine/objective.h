#pragma once
// The training objective: the task loss terms of `loss:` plus the compatibility terms
// of `compat:` (formulas in losses/compat/*.h). Each term is returned by name with its weight so
// the trainer can log it, check it for NaN/Inf, and sum  L = Σ weight · term.
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "dualtune/config/config.h"
#include "dualtune/data/dataset.h"
#include "dualtune/engine/distributed.h"
#include "dualtune/engine/prototypes.h"
#include "dualtune/losses/compat/bct.h"
#include "dualtune/models/embedding_model.h"
#include "dualtune/models/old_model.h"

namespace dualtune::engine {

struct LossTerm {
  std::string name;
  double weight;
  torch::Tensor value;  ///< scalar, unweighted
};

/// Everything the compatibility terms need about one old model.
struct OldContext {
  std::string suffix;  ///< "" with one old model; "@i" (its position in old:) with several
  double weight = 1;   ///< old[i].weight, multiplies each of its terms
  std::shared_ptr<models::OldModel> model;
  std::vector<int64_t> n2o;  ///< new label -> this old model's label, -1 unknown
  Prototypes prototypes;     ///< in this old model's space
  double proto_unit = 1;     ///< distance unit of the triplet prototype term (1, or the prototypes' spacing)
  models::ClassHead head;
  losses::compat::ExtendedClassifier extended;
};

class Objective {
 public:
  /// Reads `loss:` and `compat:`. For a compatible method opens each old model of
  /// `old:` (one, or a list: v3 trained against v2 and v1 at once), builds its n2o by
  /// class name and computes (or loads) its prototypes over `train_set`; the prototypes
  /// used are saved into run_dir/prototypes (old model 0) and run_dir/prototypes_<i>.
  /// compat.prototypes, when given, are old model 0's. `log` receives human-readable
  /// set-up lines (how many classes the old model knows, synthesized classifier, ...).
  /// With a distributed context of world > 1 every rank holds the old models; the
  /// prototype pass is sharded (rank r embeds items i % world == r, per-class sums and
  /// counts are all-reduced), so all ranks get the single-process prototypes; only rank
  /// 0 saves them.
  Objective(const config::Config& cfg, std::shared_ptr<const data::Dataset> train_set, const std::string& run_dir,
            const std::function<void(const std::string&)>& log, Distributed* dist = nullptr);

  /// x: B × C × H × W (the batch), e: B × Dn new embeddings, labels: B new labels.
  /// The compatibility terms of old model i are named "<term><suffix>" and weighted by
  /// the term's weight times old[i].weight: L = L_task + Σ_i w_i Σ_t λ_t L_t(i). Old
  /// models are frozen; every gradient goes to the new model.
  std::vector<LossTerm> terms(const torch::Tensor& x, const torch::Tensor& e, const torch::Tensor& labels,
                              models::EmbeddingModelImpl& model);

  const std::string& method() const { return method_; }
  /// Old model 0 (nullptr for independent).
  models::OldModel* old_model() { return olds_.empty() ? nullptr : olds_.front().model.get(); }
  const std::vector<OldContext>& old_models() const { return olds_; }

 private:
  void add_terms(const OldContext& old, const torch::Tensor& x, const torch::Tensor& e, const torch::Tensor& labels,
                 models::EmbeddingModelImpl& model, std::vector<LossTerm>& out) const;

  const config::Config& cfg_;
  std::string method_;
  std::vector<OldContext> olds_;
};

}  // namespace dualtune::engine

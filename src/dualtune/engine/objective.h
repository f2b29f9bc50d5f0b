#pragma once
// The training objective: the task loss terms of `loss:` plus the compatibility terms
// of `compat:` (DESIGN.md "Methods"). Each term is returned by name with its weight so
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

class Objective {
 public:
  /// Reads `loss:` and `compat:`. For a compatible method opens the old model, builds
  /// n2o by class name and computes (or loads) the prototypes over `train_set`; the
  /// prototypes used are saved into run_dir/prototypes. `log` receives human-readable
  /// set-up lines (how many classes the old model knows, synthesized classifier, ...).
  /// With a distributed context of world > 1 every rank holds the old model; the
  /// prototype pass is sharded (rank r embeds items i % world == r, per-class sums and
  /// counts are all-reduced), so all ranks get the single-process prototypes; only rank
  /// 0 saves them.
  Objective(const config::Config& cfg, std::shared_ptr<const data::Dataset> train_set, const std::string& run_dir,
            const std::function<void(const std::string&)>& log, Distributed* dist = nullptr);

  /// x: B × C × H × W (the batch), e: B × Dn new embeddings, labels: B new labels.
  std::vector<LossTerm> terms(const torch::Tensor& x, const torch::Tensor& e, const torch::Tensor& labels,
                              models::EmbeddingModelImpl& model);

  const std::string& method() const { return method_; }
  models::OldModel* old_model() { return old_.get(); }

 private:
  const config::Config& cfg_;
  std::string method_;
  std::shared_ptr<models::OldModel> old_;
  std::vector<int64_t> n2o_;
  Prototypes prototypes_;
  losses::compat::ClassHead old_head_;
  losses::compat::ExtendedClassifier extended_;
};

}  // namespace dualtune::engine

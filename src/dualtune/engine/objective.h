#pragma once
// The training objective: the task loss terms of `loss:` plus the compatibility terms
// of `compat:` (formulas in losses/compat/*.h). Each term is returned by name with its weight so
// the trainer can log it, check it for NaN/Inf, and sum  L = Σ weight · term.
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "dualtune/data/dataset.h"
#include "dualtune/data/transforms.h"
#include "dualtune/engine/distributed.h"
#include "dualtune/engine/prototypes.h"
#include "dualtune/engine/settings.h"
#include "dualtune/losses/compat/bct.h"
#include "dualtune/models/embedding_model.h"
#include "dualtune/models/old_model.h"

namespace dualtune::engine {

// The options mirror the config sections `loss:`, `compat:` and `old:` (defaults = the
// schema's); settings.h fills them from a Config.

/// `loss:` — the task loss of the new model's own classifier.
struct TaskLossOptions {
  std::string type = "softmax";  ///< softmax | cosface | arcface
  double weight = 1.0;
  double label_smoothing = 0.1;  ///< softmax
  double scale = 30.0;           ///< s of cosface / arcface
  double margin = 0.35;          ///< m of cosface / arcface
  double triplet = 0.0;          ///< weight of the batch-hard triplet term (0 = off)
  double triplet_margin = 0.3;
};

/// `compat:` — the method and the weights of its terms (0 switches a term off).
struct CompatOptions {
  std::string method = "independent";  ///< independent | l2 | bct | dual-tuning
  double l2_weight = 1.0;
  double bct_weight = 1.0;
  bool bct_rescale = true;            ///< synthesized rows rescaled to the mean learned-row norm
  std::string proto_form = "triplet";  ///< triplet | softmax | regress
  double proto_weight = 0.1;
  double proto_margin = 0.3;
  std::string proto_margin_unit = "absolute";  ///< absolute | spacing
  double proto_scale = 16.0;
  std::string prototypes;  ///< precomputed prototypes of old model 0 ("" = computed)
  double n2o_weight = 0.2;
  bool n2o_extended = false;  ///< L_n2o over Wo extended with rescaled synthesized rows
  double o2n_weight = 0.2;
  double mix_weight = 0.0;
  double mix_rho = 0.5;
  double contrast_weight = 0.0;
  double contrast_temperature = 0.05;
  bool contrast_new_negatives = true;
};

/// One entry of `old:`.
struct OldModelOptions {
  std::string path;        ///< run directory, TorchScript or ONNX file
  std::string class_map;   ///< TorchScript / ONNX: class map JSON
  std::string classifier;  ///< TorchScript / ONNX: classifier weights .npy (Co x Do), optional
  double weight = 1.0;     ///< multiplies every compat term of this old model
};

struct ObjectiveOptions {
  TaskLossOptions loss;
  CompatOptions compat;
  std::vector<OldModelOptions> old{1};  ///< one entry per old model (unused for independent)
  int64_t embedding_dim = 128;          ///< model.embedding_dim (0 = backbone width): Dn of the prototype spacing
  InputSpec input;                      ///< this run's input; every old run directory must share it
  data::TransformOptions prototype_transform;  ///< test-time transform of the prototype pass
  int workers = 2;                             ///< decoding threads of the prototype pass
  std::string device = "cpu";  ///< resolved (cpu | cuda): run-directory old models, prototypes and heads live there
};

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
  /// For a compatible method opens each old model of options.old (one, or a list: v3
  /// trained against v2 and v1 at once), builds its n2o by class name and computes (or
  /// loads) its prototypes over `train_set`; the prototypes used are saved into
  /// run_dir/prototypes (old model 0) and run_dir/prototypes_<i>. compat.prototypes,
  /// when given, are old model 0's. `log` receives human-readable
  /// set-up lines (how many classes the old model knows, synthesized classifier, ...).
  /// With a distributed context of world > 1 every rank holds the old models; the
  /// prototype pass is sharded (rank r embeds items i % world == r, per-class sums and
  /// counts are all-reduced), so all ranks get the single-process prototypes; only rank
  /// 0 saves them.
  Objective(ObjectiveOptions options, std::shared_ptr<const data::Dataset> train_set, const std::string& run_dir,
            const std::function<void(const std::string&)>& log, Distributed* dist = nullptr);

  /// x: B × C × H × W (the batch), e: B × Dn new embeddings, labels: B new labels.
  /// The compatibility terms of old model i are named "<term><suffix>" and weighted by
  /// the term's weight times old[i].weight: L = L_task + Σ_i w_i Σ_t λ_t L_t(i). Old
  /// models are frozen; every gradient goes to the new model.
  std::vector<LossTerm> terms(const torch::Tensor& x, const torch::Tensor& e, const torch::Tensor& labels,
                              models::EmbeddingModelImpl& model);

  const std::string& method() const { return options_.compat.method; }
  /// Old model 0 (nullptr for independent).
  models::OldModel* old_model() { return olds_.empty() ? nullptr : olds_.front().model.get(); }
  const std::vector<OldContext>& old_models() const { return olds_; }

 private:
  void add_terms(const OldContext& old, const torch::Tensor& x, const torch::Tensor& e, const torch::Tensor& labels,
                 models::EmbeddingModelImpl& model, std::vector<LossTerm>& out) const;

  ObjectiveOptions options_;
  std::vector<OldContext> olds_;
};

}  // namespace dualtune::engine

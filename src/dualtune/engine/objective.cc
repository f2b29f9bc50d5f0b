#include "dualtune/engine/objective.h"

#include <filesystem>

#include "dualtune/data/subset.h"
#include "dualtune/engine/extract.h"
#include "dualtune/engine/run_dir.h"
#include "dualtune/engine/settings.h"
#include "dualtune/losses/compat/l2.h"
#include "dualtune/losses/compat/mix.h"
#include "dualtune/losses/compat/mutual.h"
#include "dualtune/losses/compat/prototype.h"
#include "dualtune/losses/cross_entropy.h"
#include "dualtune/losses/margin_softmax.h"
#include "dualtune/losses/triplet.h"
#include "dualtune/util/error.h"

namespace dualtune::engine {
namespace compat = losses::compat;

namespace {

// The old run's input transform must be the one the new model is fed: both see the same batch.
void check_same_input(const config::Config& cfg, const std::string& old_dir) {
  const auto old_cfg = config::Config::load(old_dir + "/config.yml");
  for (const char* key : {"data.height", "data.width", "data.channels"}) {
    DT_CHECK(old_cfg.get<int64_t>(key) == cfg.get<int64_t>(key), "old model ", old_dir, " was trained with ", key,
             " = ", old_cfg.get<int64_t>(key), " but this run uses ", cfg.get<int64_t>(key),
             ": both models see the same input batch");
  }
  for (const char* key : {"data.mean", "data.std"}) {
    DT_CHECK(old_cfg.get<std::vector<double>>(key) == cfg.get<std::vector<double>>(key), "old model ", old_dir,
             " was trained with a different ", key, ": both models see the same normalised input");
  }
}

}  // namespace

Objective::Objective(const config::Config& cfg, std::shared_ptr<const data::Dataset> train_set,
                     const std::string& run_dir, const std::function<void(const std::string&)>& log,
                     Distributed* dist)
    : cfg_(cfg), method_(cfg.get<std::string>("compat.method")) {
  if (method_ == "independent") return;
  const auto old_path = cfg.get<std::string>("old.path");
  old_ = models::OldModel::open(old_path, cfg.get<std::string>("old.class_map"), cfg.get<std::string>("old.classifier"));
  if (std::filesystem::is_directory(old_path)) check_same_input(cfg, old_path);
  log("old model: " + old_->describe());

  const auto& classes = train_set->classes();
  n2o_ = data::n2o_label_map(classes, old_->classes());
  const auto known = std::count_if(n2o_.begin(), n2o_.end(), [](int64_t v) { return v >= 0; });
  log("the old model knows " + std::to_string(known) + " of the " + std::to_string(classes.size()) +
      " training classes (matched by name)");
  DT_CHECK(known > 0 || method_ == "l2", "the old model (", old_->describe(),
           ") knows none of the training classes by name: check the class maps");

  const bool need_prototypes = method_ == "bct" || method_ == "dual-tuning";
  if (need_prototypes) {
    const auto given = cfg.get<std::string>("compat.prototypes");
    if (!given.empty()) {
      prototypes_ = load_prototypes(given, classes);
      DT_CHECK(old_->dim() < 0 || prototypes_.matrix.size(1) == old_->dim(), given, ": prototypes have ",
               prototypes_.matrix.size(1), " components but the old model's embedding has ", old_->dim());
      log("prototypes loaded from " + given);
    } else {
      log("computing old-space prototypes over " + std::to_string(train_set->size()) + " training images");
      auto old = old_;
      // [distributed] each rank embeds its shard; sums and counts are added over the ranks.
      const bool sharded = dist && dist->enabled();
      const auto shard = sharded ? data::apply_shard(train_set, dist->rank(), dist->world_size()) : train_set;
      const auto fs = extract_features([old](const torch::Tensor& x) { return old->embed(x); }, shard,
                                       transform_options(cfg, false), 256, cfg.get<int>("data.workers"));
      auto sums = class_sums(fs);
      if (sharded) {
        dist->all_reduce_sum(sums.sum, "all-reduce of the prototype sums");
        dist->all_reduce_sum(sums.count, "all-reduce of the prototype counts");
      }
      prototypes_ = means_of(sums);
    }
    if (!dist || dist->is_main()) save_prototypes(RunPaths{run_dir}.prototypes(), prototypes_);
  }

  old_head_ = old_->head();
  if (old_head_.weight.defined()) {
    DT_CHECK(old_head_.weight.size(0) == static_cast<int64_t>(old_->classes().size()), "old classifier has ",
             old_head_.weight.size(0), " rows but the old class map has ", old_->classes().size(), " classes");
  } else if (need_prototypes) {
    // No Wo: the old classifier is synthesized from old-space class means (rows of old
    // classes absent from the new training set stay zero and are never a target).
    old_head_.weight = torch::zeros({static_cast<int64_t>(old_->classes().size()), prototypes_.matrix.size(1)});
    for (size_t c = 0; c < n2o_.size(); ++c) {
      if (n2o_[c] >= 0) old_head_.weight[n2o_[c]].copy_(prototypes_.matrix[static_cast<int64_t>(c)]);
    }
    log("no old classifier weights given: using the synthesized classifier (old-space class means)");
  }
  if (method_ == "bct" || (method_ == "dual-tuning" && cfg.get<bool>("compat.n2o_extended"))) {
    extended_ = compat::extend_old_classifier(old_->head().weight.defined() ? old_head_ : compat::ClassHead{},
                                              prototypes_.matrix, n2o_, cfg.get<bool>("compat.bct_rescale"));
    log("extended old classifier: " + std::to_string(extended_.head.weight.size(0)) + " rows (" +
        std::to_string(extended_.synthesized) + " synthesized" +
        (cfg.get<bool>("compat.bct_rescale") ? ", rescaled to the mean learned-row norm " +
                                                   std::to_string(extended_.learned_row_norm)
                                             : ", not rescaled") +
        ")");
  }
}

std::vector<LossTerm> Objective::terms(const torch::Tensor& x, const torch::Tensor& e, const torch::Tensor& labels,
                                       models::EmbeddingModelImpl& model) {
  std::vector<LossTerm> out;
  auto add = [&](const char* name, double weight, const std::function<torch::Tensor()>& f) {
    if (weight > 0) out.push_back({name, weight, f()});
  };
  // Task loss.
  const auto type = cfg_.get<std::string>("loss.type");
  const double s = cfg_.get<double>("loss.scale"), m = cfg_.get<double>("loss.margin");
  add(type.c_str(), cfg_.get<double>("loss.weight"), [&] {
    if (type == "cosface") return losses::cosface_loss(model.classifier->cosine(e), labels, s, m);
    if (type == "arcface") return losses::arcface_loss(model.classifier->cosine(e), labels, s, m);
    return losses::label_smoothing_cross_entropy(model.classifier->forward(e), labels,
                                                 cfg_.get<double>("loss.label_smoothing"));
  });
  add("triplet", cfg_.get<double>("loss.triplet"),
      [&] { return losses::batch_hard_triplet_loss(e, labels, cfg_.get<double>("loss.triplet_margin")); });
  if (method_ == "independent") return out;

  const auto eo = old_->embed(x);
  // An exported (TorchScript / ONNX) old model tells its width only now: precomputed prototypes must match it.
  DT_CHECK(!prototypes_.matrix.defined() || prototypes_.matrix.size(1) == eo.size(1), "prototypes have ",
           prototypes_.matrix.size(1), " components but the old model's embedding has ", eo.size(1));
  if (method_ == "l2") {
    add("l2", cfg_.get<double>("compat.l2_weight"), [&] { return compat::l2_loss(e, eo); });
  } else if (method_ == "bct") {
    add("bct", cfg_.get<double>("compat.bct_weight"), [&] { return compat::bct_loss(e, labels, extended_); });
  } else {  // dual-tuning
    const auto old_targets = compat::map_labels(labels, n2o_);
    add("proto", cfg_.get<double>("compat.proto_weight"), [&] {
      if (cfg_.get<std::string>("compat.proto_form") == "softmax")
        return compat::prototype_softmax_loss(e, prototypes_.matrix, labels, cfg_.get<double>("compat.proto_scale"));
      return compat::prototype_triplet_loss(e, prototypes_.matrix, labels, cfg_.get<double>("compat.proto_margin"));
    });
    add("n2o", cfg_.get<double>("compat.n2o_weight"), [&] {
      if (cfg_.get<bool>("compat.n2o_extended")) return compat::bct_loss(e, labels, extended_);
      return compat::n2o_loss(e, old_head_, old_targets);
    });
    add("o2n", cfg_.get<double>("compat.o2n_weight"), [&] { return compat::o2n_loss(eo, *model.classifier, labels); });
    add("mix", cfg_.get<double>("compat.mix_weight"), [&] {
      return compat::mix_loss(e, eo, *model.classifier, old_head_, labels, old_targets,
                              cfg_.get<double>("compat.mix_rho"));
    });
  }
  return out;
}

}  // namespace dualtune::engine

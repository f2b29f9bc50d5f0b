#include "dualtune/engine/objective.h"
#include "dualtune/engine/open_old_model.h"

#include <cstdio>
#include <filesystem>

#include "dualtune/data/subset.h"
#include "dualtune/engine/extract.h"
#include "dualtune/engine/settings.h"
#include "dualtune/losses/compat/contrastive.h"
#include "dualtune/losses/compat/l2.h"
#include "dualtune/losses/compat/mix.h"
#include "dualtune/losses/compat/mutual.h"
#include "dualtune/losses/compat/prototype.h"
#include "dualtune/losses/cross_entropy.h"
#include "dualtune/losses/margin_softmax.h"
#include "dualtune/losses/triplet.h"
#include "dualtune/util/error.h"
#include "dualtune/util/run_dir.h"

namespace dualtune::engine {
namespace compat = losses::compat;


namespace {

// Opens old model `index` of the old: list and prepares what its terms need.
OldContext old_context(const ObjectiveOptions& o, int64_t index, int64_t count,
                       const std::shared_ptr<const data::Dataset>& train_set, const std::string& run_dir,
                       const std::function<void(const std::string&)>& log, Distributed* dist) {
  const std::string& method = o.compat.method;
  const OldModelOptions& entry = o.old[static_cast<size_t>(index)];
  OldContext ctx;
  ctx.suffix = count > 1 ? "@" + std::to_string(index) : "";
  ctx.weight = entry.weight;
  const auto& old_path = entry.path;
  ctx.model = open_old_model(old_path, entry.class_map, entry.classifier, "fp32", o.device);
  check_same_input(o.input, old_path, "old model");
  const std::string who = count > 1 ? "old model " + std::to_string(index) : "old model";
  log(who + ": " + ctx.model->describe() + (count > 1 ? ", weight " + std::to_string(ctx.weight) : ""));

  const auto& classes = train_set->classes();
  ctx.n2o = data::n2o_label_map(classes, ctx.model->classes());
  const auto known = std::count_if(ctx.n2o.begin(), ctx.n2o.end(), [](int64_t v) { return v >= 0; });
  log("the " + who + " knows " + std::to_string(known) + " of the " + std::to_string(classes.size()) +
      " training classes (matched by name)");
  DT_CHECK(known > 0 || method == "l2", "the ", who, " (", ctx.model->describe(),
           ") knows none of the training classes by name: check the class maps");

  const bool need_prototypes = method == "bct" || method == "dual-tuning";
  if (need_prototypes) {
    const auto given = index == 0 ? o.compat.prototypes : std::string();
    if (!given.empty()) {
      ctx.prototypes = load_prototypes(given, classes);
      DT_CHECK(ctx.model->dim() < 0 || ctx.prototypes.matrix.size(1) == ctx.model->dim(), given, ": prototypes have ",
               ctx.prototypes.matrix.size(1), " components but the old model's embedding has ", ctx.model->dim());
      log("prototypes loaded from " + given);
    } else {
      log("computing " + who + "-space prototypes over " + std::to_string(train_set->size()) + " training images");
      auto old = ctx.model;
      // [distributed] each rank embeds its shard; sums and counts are added over the ranks.
      const bool sharded = dist && dist->enabled();
      const auto shard = sharded ? data::apply_shard(train_set, dist->rank(), dist->world_size()) : train_set;
      const auto fs = extract_features([old](const torch::Tensor& x) { return old->embed_on(x); }, shard,
                                       o.prototype_transform, 256, o.workers);
      auto sums = class_sums(fs);
      if (sharded) {
        dist->all_reduce_sum(sums.sum, "all-reduce of the prototype sums");
        dist->all_reduce_sum(sums.count, "all-reduce of the prototype counts");
      }
      ctx.prototypes = means_of(sums);
    }
    const std::string dir = RunPaths{run_dir}.prototypes() + (index > 0 ? "_" + std::to_string(index) : "");
    if (!dist || dist->is_main()) save_prototypes(dir, ctx.prototypes);
    if (method == "dual-tuning" && o.compat.proto_form == "triplet" && o.compat.proto_margin_unit == "spacing") {
      DT_CHECK(ctx.prototypes.matrix.size(0) >= 2, "compat.proto_margin_unit: spacing needs at least 2 classes, the ",
               who, "'s prototypes have ", ctx.prototypes.matrix.size(0));
      const auto dn = o.embedding_dim;
      ctx.proto_unit = compat::prototype_spacing(ctx.prototypes.matrix, dn > 0 ? dn : ctx.prototypes.matrix.size(1));
      char buf[160];
      std::snprintf(buf, sizeof buf, "prototype distances in units of the %s's class spacing %.4g (margin %g of it)",
                    who.c_str(), ctx.proto_unit, o.compat.proto_margin);
      log(buf);
    }
  }

  // Heads and prototypes are put together on the CPU, then moved to the device once.
  ctx.head = ctx.model->head();
  if (ctx.head.weight.defined()) ctx.head.weight = ctx.head.weight.to(torch::kCPU);
  if (ctx.head.weight.defined()) {
    DT_CHECK(ctx.head.weight.size(0) == static_cast<int64_t>(ctx.model->classes().size()), "old classifier has ",
             ctx.head.weight.size(0), " rows but the old class map has ", ctx.model->classes().size(), " classes");
  } else if (need_prototypes) {
    // No Wo: the old classifier is synthesized from old-space class means (rows of old
    // classes absent from the new training set stay zero and are never a target).
    ctx.head.weight = torch::zeros({static_cast<int64_t>(ctx.model->classes().size()), ctx.prototypes.matrix.size(1)});
    for (size_t c = 0; c < ctx.n2o.size(); ++c) {
      if (ctx.n2o[c] >= 0) ctx.head.weight[ctx.n2o[c]].copy_(ctx.prototypes.matrix[static_cast<int64_t>(c)]);
    }
    log("no old classifier weights given: using the synthesized classifier (old-space class means)");
  }
  if (method == "bct" || (method == "dual-tuning" && o.compat.n2o_extended)) {
    ctx.extended = compat::extend_old_classifier(ctx.model->head().weight.defined() ? ctx.head : models::ClassHead{},
                                                 ctx.prototypes.matrix, ctx.n2o, o.compat.bct_rescale);
    log("extended old classifier: " + std::to_string(ctx.extended.head.weight.size(0)) + " rows (" +
        std::to_string(ctx.extended.synthesized) + " synthesized" +
        (o.compat.bct_rescale ? ", rescaled to the mean learned-row norm " +
                                                   std::to_string(ctx.extended.learned_row_norm)
                                             : ", not rescaled") +
        ")");
  }
  const torch::Device device(o.device);
  if (ctx.head.weight.defined()) ctx.head.weight = ctx.head.weight.to(device);
  if (ctx.prototypes.matrix.defined()) ctx.prototypes.matrix = ctx.prototypes.matrix.to(device);
  if (ctx.extended.head.weight.defined()) ctx.extended.head.weight = ctx.extended.head.weight.to(device);
  return ctx;
}

}  // namespace

Objective::Objective(ObjectiveOptions options, std::shared_ptr<const data::Dataset> train_set,
                     const std::string& run_dir, const std::function<void(const std::string&)>& log,
                     Distributed* dist)
    : options_(std::move(options)) {
  if (method() == "independent") return;
  const auto count = static_cast<int64_t>(options_.old.size());
  for (int64_t i = 0; i < count; ++i) olds_.push_back(old_context(options_, i, count, train_set, run_dir, log, dist));
}

std::vector<LossTerm> Objective::terms(const torch::Tensor& x, const torch::Tensor& e, const torch::Tensor& labels,
                                       models::EmbeddingModelImpl& model) {
  std::vector<LossTerm> out;
  auto add = [&](const std::string& name, double weight, const std::function<torch::Tensor()>& f) {
    if (weight > 0) out.push_back({name, weight, f()});
  };
  // Task loss.
  const TaskLossOptions& loss = options_.loss;
  const std::string& type = loss.type;
  const double s = loss.scale, m = loss.margin;
  add(type, loss.weight, [&] {
    if (type == "cosface") return losses::cosface_loss(model.classifier->cosine(e), labels, s, m);
    if (type == "arcface") return losses::arcface_loss(model.classifier->cosine(e), labels, s, m);
    return losses::label_smoothing_cross_entropy(model.classifier->forward(e), labels,
                                                 loss.label_smoothing);
  });
  add("triplet", loss.triplet, [&] { return losses::batch_hard_triplet_loss(e, labels, loss.triplet_margin); });
  for (const auto& old : olds_) add_terms(old, x, e, labels, model, out);
  return out;
}

void Objective::add_terms(const OldContext& old, const torch::Tensor& x, const torch::Tensor& e,
                          const torch::Tensor& labels, models::EmbeddingModelImpl& model,
                          std::vector<LossTerm>& out) const {
  auto add = [&](const char* name, double weight, const std::function<torch::Tensor()>& f) {
    if (weight > 0 && old.weight > 0) out.push_back({name + old.suffix, weight * old.weight, f()});
  };
  const auto eo = old.model->embed_on(x);  // on x's device
  // An exported (TorchScript / ONNX) old model tells its width only now: precomputed prototypes must match it.
  DT_CHECK(!old.prototypes.matrix.defined() || old.prototypes.matrix.size(1) == eo.size(1), "prototypes have ",
           old.prototypes.matrix.size(1), " components but the old model's embedding has ", eo.size(1));
  const CompatOptions& c = options_.compat;
  if (c.method == "l2") {
    add("l2", c.l2_weight, [&] { return compat::l2_loss(e, eo); });
  } else if (c.method == "bct") {
    add("bct", c.bct_weight, [&] { return compat::bct_loss(e, labels, old.extended); });
  } else {  // dual-tuning
    const auto old_targets = compat::map_labels(labels, old.n2o);
    add("proto", c.proto_weight, [&] {
      if (c.proto_form == "softmax")
        return compat::prototype_softmax_loss(e, old.prototypes.matrix, labels, c.proto_scale);
      if (c.proto_form == "regress") return compat::prototype_regression_loss(e, old.prototypes.matrix, labels);
      return compat::prototype_triplet_loss(e, old.prototypes.matrix, labels, c.proto_margin, old.proto_unit);
    });
    add("n2o", c.n2o_weight, [&] {
      if (c.n2o_extended) return compat::bct_loss(e, labels, old.extended);
      return compat::n2o_loss(e, old.head, old_targets);
    });
    add("o2n", c.o2n_weight, [&] { return compat::o2n_loss(eo, *model.classifier, labels); });
    add("contrast", c.contrast_weight, [&] {
      return compat::cross_model_contrastive_loss(e, eo, labels, c.contrast_temperature, c.contrast_new_negatives);
    });
    add("mix", c.mix_weight,
        [&] { return compat::mix_loss(e, eo, *model.classifier, old.head, labels, old_targets, c.mix_rho); });
  }
}

}  // namespace dualtune::engine

// Config::validate(): the ranges and enum values of the schema's keys (schema.cc holds
// the keys and their defaults).
#include <string>
#include <vector>

#include "dualtune/config/config.h"
#include "dualtune/config/scalar.h"
#include "dualtune/util/error.h"

namespace dualtune::config {
namespace {

void check(bool ok, const std::string& key, const std::string& what, const std::string& found) {
  if (!ok) DT_THROW("config key '", key, "': expected ", what, ", found ", found);
}

std::string num(double d) { return detail::format_float(d); }

}  // namespace

void Config::validate() const {
  auto i64 = [&](const char* k) { return get<int64_t>(k); };
  auto dbl = [&](const char* k) { return get<double>(k); };
  auto str = [&](const char* k) { return get<std::string>(k); };
  auto at_least = [&](const char* k, int64_t lo) {
    const int64_t v = i64(k);
    check(v >= lo, k, ">= " + std::to_string(lo), std::to_string(v));
  };
  auto one_of = [&](const char* k, std::initializer_list<const char*> values) {
    const std::string v = str(k);
    std::string list;
    for (const char* s : values) {
      if (v == s) return;
      list += list.empty() ? "" : ", ";
      list += s;
    }
    check(false, k, "one of {" + list + "}", "'" + v + "'");
  };
  auto in_unit = [&](const char* k) {
    const double v = dbl(k);
    check(v >= 0.0 && v <= 1.0, k, "a fraction in [0, 1]", num(v));
  };
  auto positive = [&](const char* k) {
    const double v = dbl(k);
    check(v > 0.0, k, "> 0", num(v));
  };
  auto non_negative = [&](const char* k) {
    const double v = dbl(k);
    check(v >= 0.0, k, ">= 0", num(v));
  };
  // [0, 1), `what` says it in the key's words ("a value", "a fraction").
  auto below_one = [&](const char* k, const char* what) {
    const double v = dbl(k);
    check(v >= 0.0 && v < 1.0, k, std::string(what) + " in [0, 1)", num(v));
  };

  at_least("threads", 0);
  at_least("log_every", 1);
  at_least("optim.epochs", 1);
  at_least("optim.batch_size", 1);
  at_least("optim.warmup_epochs", 0);
  at_least("data.height", 1);
  at_least("data.width", 1);
  at_least("data.channels", 1);
  at_least("data.workers", 0);
  at_least("data.limit", 0);
  at_least("data.p", 1);
  at_least("data.k", 1);
  at_least("augment.pad", 0);
  at_least("model.embedding_dim", 0);
  at_least("transform.width", 1);
  at_least("transform.depth", 1);
  at_least("transform.epochs", 1);
  at_least("transform.batch_size", 2);
  at_least("transform.augmented_passes", 0);
  at_least("transform.side_dim", 0);

  positive("optim.lr");
  non_negative("optim.weight_decay");
  below_one("optim.momentum", "a value");
  positive("optim.gamma");
  {
    const auto ms = get<std::vector<int64_t>>("optim.milestones");
    for (size_t i = 0; i < ms.size(); ++i) {
      check(ms[i] >= 1, "optim.milestones", "epochs >= 1", std::to_string(ms[i]));
      if (i > 0) check(ms[i] > ms[i - 1], "optim.milestones", "strictly increasing epochs",
                       std::to_string(ms[i - 1]) + " then " + std::to_string(ms[i]));
    }
  }

  // Every loss weight is >= 0 (0 switches its term off).
  for (const char* section : {"loss", "compat"}) {
    for (const auto& kv : root_[section]) {
      const std::string name = kv.first.Scalar();
      const bool is_weight = name == "weight" || name == "triplet" ||
                             (name.size() > 7 && name.compare(name.size() - 7, 7, "_weight") == 0);
      if (!is_weight) continue;
      const std::string key = std::string(section) + "." + name;
      const double v = get<double>(key);
      check(v >= 0.0, key, "a weight >= 0", num(v));
    }
  }
  below_one("loss.label_smoothing", "a value");
  positive("loss.scale");
  non_negative("loss.margin");
  non_negative("loss.triplet_margin");
  non_negative("compat.proto_margin");
  positive("compat.proto_scale");
  positive("compat.contrast_temperature");
  positive("transform.lr");
  non_negative("transform.weight_decay");
  below_one("transform.holdout", "a fraction");
  in_unit("compat.mix_rho");
  in_unit("augment.erasing");

  {
    const int64_t c = i64("data.channels");
    const auto mean = get<std::vector<double>>("data.mean");
    const auto stdv = get<std::vector<double>>("data.std");
    check(static_cast<int64_t>(mean.size()) == c, "data.mean", std::to_string(c) + " values (data.channels)",
          std::to_string(mean.size()));
    check(static_cast<int64_t>(stdv.size()) == c, "data.std", std::to_string(c) + " values (data.channels)",
          std::to_string(stdv.size()));
    for (double s : stdv) check(s > 0.0, "data.std", "values > 0", num(s));
  }

  one_of("device", {"cpu", "cuda", "auto"});
  one_of("data.format", {"idx", "image_folder", "market1501"});
  one_of("data.sampler", {"random", "pk"});
  one_of("model.backbone", {"convnet-s", "convnet-m", "resnet18", "resnet50", "torchscript"});
  // model.path names the module of a torchscript backbone and nothing else: a path left
  // beside a built-in backbone would be silently ignored.
  if (str("model.backbone") == "torchscript")
    check(!str("model.path").empty(), "model.path",
          "the TorchScript file of model.backbone 'torchscript' (torch.jit.script(net).save(path))", "an empty path");
  else
    check(str("model.path").empty(), "model.path", "no path with the built-in model.backbone '" +
          str("model.backbone") + "' (a file is read only with model.backbone: torchscript)",
          "'" + str("model.path") + "'");
  one_of("loss.type", {"softmax", "cosface", "arcface"});
  one_of("optim.name", {"adam", "sgd"});
  one_of("optim.schedule", {"cosine", "multistep", "constant"});
  one_of("optim.precision", {"fp32", "bf16", "auto"});
  one_of("compat.method", {"independent", "l2", "bct", "dual-tuning"});
  one_of("compat.proto_form", {"triplet", "softmax", "regress"});
  one_of("compat.proto_margin_unit", {"absolute", "spacing"});

  const std::string method = str("compat.method");
  const int64_t olds = entries("old");
  for (int64_t i = 0; i < olds; ++i) {
    const std::string at = olds > 1 ? "old." + std::to_string(i) + "." : "old.";
    if (method != "independent")
      check(!str((at + "path").c_str()).empty(), at + "path",
            "an old model (run directory or TorchScript file) for compat.method '" + method + "'", "an empty path");
    const double w = dbl((at + "weight").c_str());
    check(w >= 0.0, at + "weight", "a weight >= 0", num(w));
  }
  if (dbl("loss.triplet") > 0.0)
    check(str("data.sampler") == "pk", "data.sampler", "'pk' because loss.triplet > 0 needs P x K batches",
          "'" + str("data.sampler") + "'");
}

}  // namespace dualtune::config

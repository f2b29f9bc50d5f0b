#include "dualtune/engine/transform_run.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "dualtune/data/loader.h"
#include "dualtune/engine/checkpoint.h"
#include "dualtune/engine/extract.h"
#include "dualtune/engine/schedule.h"
#include "dualtune/engine/settings.h"
#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"
#include "dualtune/util/run_dir.h"

namespace fs = std::filesystem;

namespace dualtune::engine {
namespace {

double mse(const torch::Tensor& pred, const torch::Tensor& target) {
  return torch::mse_loss(pred, target).item<double>();
}

// Mean MSE of h over rows idx of pairs, in batches, eval mode, no gradients.
double evaluate_mse(models::ForwardTransform& h, const EmbeddingPairs& p, const torch::Tensor& idx) {
  if (idx.numel() == 0) return std::nan("");
  torch::NoGradGuard no_grad;
  h->eval();
  double sum = 0;
  const int64_t n = idx.numel(), bs = 4096;
  for (int64_t i = 0; i < n; i += bs) {
    const auto b = idx.narrow(0, i, std::min(bs, n - i));
    const auto pred = h->forward(p.old.index_select(0, b), p.side.defined() ? p.side.index_select(0, b) : torch::Tensor());
    sum += mse(pred, p.target.index_select(0, b)) * static_cast<double>(b.numel());
  }
  return sum / static_cast<double>(n);
}

std::string model_hash(const std::string& path) {
  return fs::is_directory(path) ? read_meta(path).value("config_hash", std::string()) : std::string();
}

void save_transform(const std::string& path, models::ForwardTransform& h) {
  torch::serialize::OutputArchive archive, model_archive;
  h->save(model_archive);
  archive.write("model", model_archive);
  const auto& s = h->spec;
  archive.write("spec", torch::tensor({s.old_dim, s.new_dim, s.side_dim, s.width, s.depth}, torch::kInt64));
  save_archive_atomic(archive, path, "");
}

}  // namespace

TransformFit fit_forward_transform(const EmbeddingPairs& pairs, const models::ForwardTransformSpec& spec,
                                   const TransformFitOptions& o, const std::function<void(const std::string&)>& log) {
  const int64_t n = pairs.old.size(0);
  DT_CHECK(pairs.old.dim() == 2 && pairs.target.dim() == 2 && pairs.target.size(0) == n,
           "forward transform: expected old N x Do and new N x Dn pairs, found ", pairs.old.sizes(), " and ",
           pairs.target.sizes());
  DT_CHECK(pairs.old.size(1) == spec.old_dim && pairs.target.size(1) == spec.new_dim,
           "forward transform: pairs are ", pairs.old.size(1), " -> ", pairs.target.size(1), " but h is ",
           spec.old_dim, " -> ", spec.new_dim);
  DT_CHECK(!pairs.side.defined() || (pairs.side.size(0) == n && pairs.side.size(1) == spec.side_dim),
           "forward transform: side information ", pairs.side.sizes(), " does not match ", n, " x ", spec.side_dim);
  DT_CHECK(o.epochs >= 1 && o.batch_size >= 1 && o.lr > 0 && o.holdout >= 0 && o.holdout < 1,
           "forward transform: expected epochs >= 1, batch_size >= 1, lr > 0 and holdout in [0, 1)");
  torch::manual_seed(o.seed);
  TransformFit fit;
  fit.h = models::ForwardTransform(spec);
  auto& h = fit.h;

  // A seeded split: the held-out pairs measure how well h generalises to unseen items.
  const auto perm = torch::randperm(n, torch::TensorOptions().dtype(torch::kInt64));
  const int64_t n_hold = static_cast<int64_t>(std::floor(o.holdout * static_cast<double>(n)));
  DT_CHECK(n - n_hold >= 2, "forward transform: expected at least 2 training pairs, found ", n - n_hold);
  const auto hold = perm.narrow(0, 0, n_hold), train = perm.narrow(0, n_hold, n - n_hold);
  fit.holdout_mse_before = evaluate_mse(h, pairs, hold);

  torch::optim::Adam opt(h->parameters(), torch::optim::AdamOptions(o.lr).weight_decay(o.weight_decay));
  const int64_t nt = train.numel();
  const int64_t steps_per_epoch = (nt + o.batch_size - 1) / o.batch_size;
  const int64_t total = o.epochs * steps_per_epoch;
  for (int64_t epoch = 0; epoch < o.epochs; ++epoch) {
    h->train();
    const auto order = train.index_select(0, torch::randperm(nt, torch::TensorOptions().dtype(torch::kInt64)));
    double sum = 0;
    for (int64_t s = 0; s < steps_per_epoch; ++s) {
      const int64_t b0 = s * o.batch_size, bn = std::min(o.batch_size, nt - b0);
      if (bn < 2) continue;  // BatchNorm needs two rows
      const double lr = learning_rate("cosine", o.lr, epoch * steps_per_epoch + s, total, 0, steps_per_epoch, {}, 0.1);
      for (auto& g : opt.param_groups()) g.options().set_lr(lr);
      const auto b = order.narrow(0, b0, bn);
      const auto pred = h->forward(pairs.old.index_select(0, b),
                                   pairs.side.defined() ? pairs.side.index_select(0, b) : torch::Tensor());
      const auto loss = torch::mse_loss(pred, pairs.target.index_select(0, b));
      const double v = loss.item<double>();
      DT_CHECK(std::isfinite(v), "forward transform: the loss is ", v, " at epoch ", epoch + 1, " step ", s + 1,
               "; stopping (check the embeddings for NaN/Inf)");
      opt.zero_grad();
      loss.backward();
      opt.step();
      sum += v * static_cast<double>(bn);
    }
    fit.train_mse.push_back(sum / static_cast<double>(nt));
    fit.holdout_mse.push_back(evaluate_mse(h, pairs, hold));
    char buf[160];
    std::snprintf(buf, sizeof buf, "transform epoch %lld/%lld: train MSE %.5f, held-out MSE %.5f",
                  static_cast<long long>(epoch + 1), static_cast<long long>(o.epochs), fit.train_mse.back(),
                  fit.holdout_mse.back());
    log(buf);
  }
  h->eval();
  return fit;
}

void train_transform_run(const config::Config& cfg, const std::string& old_model, const std::string& new_model,
                         const std::function<void(const std::string&)>& log) {
  train_transform_run(transform_run_options(cfg), old_model, new_model, log);
}

void train_transform_run(const TransformRunOptions& o, const std::string& old_model, const std::string& new_model,
                         const std::function<void(const std::string&)>& log) {
  const RunPaths paths{o.run.output_dir};
  ensure_writable_dir(paths.dir);
  set_threads(o.run.threads);
  const std::string& side_model = o.side_info;
  check_same_input(o.input, old_model, "old model");
  check_same_input(o.input, new_model, "new model");
  if (!side_model.empty()) check_same_input(o.input, side_model, "side-information model");
  const auto embed_old = embedder_for(old_model), embed_new = embedder_for(new_model);
  const Embedder embed_side = side_model.empty() ? Embedder() : embedder_for(side_model);

  // Pairs: one test-time pass plus augmented passes over the training set, each batch
  // decoded once and embedded by every model.
  const auto dataset = data::open_dataset(o.data);
  const int64_t passes = 1 + o.augmented_passes;
  const uint64_t seed = o.run.seed;
  log("embedding pairs: " + std::to_string(dataset->size()) + " training images x " + std::to_string(passes) +
      " pass" + (passes > 1 ? "es (1 test-time, " + std::to_string(passes - 1) + " augmented)" : " (test-time)"));
  std::vector<torch::Tensor> olds, news, sides;
  {
    torch::NoGradGuard no_grad;
    for (int64_t pass = 0; pass < passes; ++pass) {
      data::LoaderOptions lo;
      lo.batch_size = 256;
      lo.shuffle = false;
      lo.workers = o.workers;
      lo.seed = seed + static_cast<uint64_t>(pass);
      data::Loader loader(dataset, pass > 0 ? o.train_transform : o.test_transform, lo);
      loader.start_epoch(pass);
      data::Batch b;
      while (loader.next(b)) {
        const auto x = torch::from_blob(b.images.data(), {b.n, b.c, b.h, b.w});
        olds.push_back(embed_old(x).to(torch::kFloat).clone());
        news.push_back(embed_new(x).to(torch::kFloat).clone());
        if (embed_side) sides.push_back(embed_side(x).to(torch::kFloat).clone());
      }
    }
  }
  EmbeddingPairs pairs{torch::cat(olds), torch::cat(news), sides.empty() ? torch::Tensor() : torch::cat(sides)};
  models::ForwardTransformSpec spec;
  spec.old_dim = pairs.old.size(1);
  spec.new_dim = pairs.target.size(1);
  spec.width = o.width;
  spec.depth = o.depth;
  if (pairs.side.defined()) {
    const int64_t keep = o.side_dim;
    DT_CHECK(keep <= pairs.side.size(1), "transform.side_dim = ", keep, " but the side-information model ",
             side_model, " gives ", pairs.side.size(1), " components");
    if (keep > 0) pairs.side = pairs.side.narrow(1, 0, keep).contiguous();
    spec.side_dim = pairs.side.size(1);
  }
  log("fitting h: " + std::to_string(spec.old_dim) + (spec.side_dim ? " + side " + std::to_string(spec.side_dim) : "") +
      " -> " + std::to_string(spec.new_dim) + ", width " + std::to_string(spec.width) + ", depth " +
      std::to_string(spec.depth) + ", " + std::to_string(pairs.old.size(0)) + " pairs");
  const auto t0 = std::chrono::steady_clock::now();
  auto fit = fit_forward_transform(pairs, spec, o.fit, log);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  if (!o.run.config_yaml.empty()) write_text_atomic(paths.config(), o.run.config_yaml);
  save_transform(paths.transform(), fit.h);
  auto model_json = [](const std::string& path, int64_t dim) {
    return nlohmann::json{{"path", fs::absolute(path).string()}, {"config_hash", model_hash(path)}, {"dim", dim}};
  };
  nlohmann::json meta = {{"kind", "forward_transform"},
                         {"old", model_json(old_model, spec.old_dim)},
                         {"new", model_json(new_model, spec.new_dim)},
                         {"pairs", pairs.old.size(0)},
                         {"holdout_mse_before", fit.holdout_mse_before},
                         {"holdout_mse", fit.holdout_mse.back()},
                         {"train_mse", fit.train_mse.back()},
                         {"fit_seconds", seconds},
                         {"config_hash", o.run.config_hash},
                         {"code_version", code_version()}};
  meta["side_info"] = side_model.empty() ? nlohmann::json() : model_json(side_model, spec.side_dim);
  std::string lines;
  for (size_t e = 0; e < fit.train_mse.size(); ++e)
    lines += nlohmann::json{{"epoch", e + 1}, {"train_mse", fit.train_mse[e]}, {"holdout_mse", fit.holdout_mse[e]}}
                 .dump() +
             "\n";
  write_text_atomic(paths.log(), lines);
  write_text_atomic(paths.meta(), meta.dump(2));  // last: its presence marks a finished run
}

TransformRun load_transform_run(const std::string& dir) {
  const RunPaths paths{dir};
  const std::string meta_path = paths.meta(), weights = paths.transform();
  DT_CHECK(fs::is_directory(dir), "transform ", dir, " is not a directory");
  DT_CHECK(fs::exists(meta_path) && fs::exists(weights), dir, " is not a finished transform run: expected ",
           fs::path(meta_path).filename().string(), " and ", fs::path(weights).filename().string());
  TransformRun run;
  try {
    run.meta = nlohmann::json::parse(read_file(meta_path));
  } catch (const nlohmann::json::exception& e) {
    DT_THROW(meta_path, " is corrupt: ", e.what());
  }
  DT_CHECK(run.meta.value("kind", std::string()) == "forward_transform", meta_path,
           ": expected kind forward_transform, found ", run.meta.value("kind", std::string("none")));
  try {
    torch::serialize::InputArchive archive, model_archive;
    archive.load_from(weights);
    torch::Tensor s;
    archive.read("spec", s);
    DT_CHECK(s.numel() == 5, weights, ": expected a spec of 5 integers, found ", s.numel());
    const auto* v = s.data_ptr<int64_t>();
    models::ForwardTransformSpec spec{v[0], v[1], v[2], v[3], v[4]};
    run.h = models::ForwardTransform(spec);
    archive.read("model", model_archive);
    run.h->load(model_archive);
  } catch (const c10::Error& e) {
    DT_THROW(weights, " is corrupt or not a forward transform: ", e.what_without_backtrace());
  }
  run.h->eval();
  return run;
}

std::vector<float> apply_forward_transform(TransformRun& run, int64_t n, const float* old, const float* side) {
  const auto& spec = run.h->spec;
  DT_CHECK(spec.side_dim == 0 || side != nullptr, "the transform needs side information (", spec.side_dim,
           " components per item) and none was given");
  std::vector<float> out(static_cast<size_t>(n * spec.new_dim));
  torch::NoGradGuard no_grad;
  const int64_t bs = 4096;
  for (int64_t i = 0; i < n; i += bs) {
    const int64_t b = std::min(bs, n - i);
    const auto x = torch::from_blob(const_cast<float*>(old) + i * spec.old_dim, {b, spec.old_dim});
    const auto s = spec.side_dim ? torch::from_blob(const_cast<float*>(side) + i * spec.side_dim, {b, spec.side_dim})
                                 : torch::Tensor();
    const auto y = run.h->forward(x, s).contiguous();
    std::copy(y.data_ptr<float>(), y.data_ptr<float>() + b * spec.new_dim, out.begin() + i * spec.new_dim);
  }
  return out;
}

features::FeatureSet transform_features(TransformRun& run, const features::FeatureSet& old,
                                        const features::FeatureSet* side) {
  const auto& spec = run.h->spec;
  DT_CHECK(old.d == spec.old_dim, "the transform maps ", spec.old_dim, "-dimensional old embeddings, but the features have ",
           old.d, " components");
  std::vector<float> side_rows;
  if (spec.side_dim > 0) {
    DT_CHECK(side != nullptr, "the transform was trained with side information (", spec.side_dim,
             " components): give the side-information features of the same items");
    DT_CHECK(side->n == old.n && side->paths == old.paths, "side-information features must describe the same items "
             "in the same order as the old features (", old.n, " items), found ", side->n, " items",
             side->n == old.n ? " with different paths" : "");
    DT_CHECK(side->d >= spec.side_dim, "side-information features have ", side->d, " components, the transform needs ",
             spec.side_dim);
    side_rows.resize(static_cast<size_t>(old.n * spec.side_dim));
    for (int64_t i = 0; i < old.n; ++i)
      std::copy_n(side->features.begin() + i * side->d, spec.side_dim, side_rows.begin() + i * spec.side_dim);
  }
  features::FeatureSet out = old;
  out.d = spec.new_dim;
  out.features = apply_forward_transform(run, old.n, old.features.data(), side_rows.empty() ? nullptr : side_rows.data());
  return out;
}

}  // namespace dualtune::engine

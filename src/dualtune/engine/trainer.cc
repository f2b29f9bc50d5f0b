#include "dualtune/engine/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "dualtune/data/loader.h"
#include "dualtune/data/subset.h"
#include "dualtune/engine/checkpoint.h"
#include "dualtune/engine/distributed.h"
#include "dualtune/engine/fused_adam.h"
#include "dualtune/engine/objective.h"
#include "dualtune/engine/precision.h"
#include "dualtune/engine/schedule.h"
#include "dualtune/engine/settings.h"
#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"
#include "dualtune/util/provenance.h"
#include "dualtune/util/run_dir.h"

namespace dualtune::engine {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string fmt_duration(double s) {
  char buf[32];
  const int v = static_cast<int>(s + 0.5);
  if (v >= 3600) std::snprintf(buf, sizeof buf, "%dh%02dm", v / 3600, (v / 60) % 60);
  else std::snprintf(buf, sizeof buf, "%dm%02ds", v / 60, v % 60);
  return buf;
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const config::Config& cfg, models::EmbeddingModel& model) {
  std::vector<torch::Tensor> params;
  for (auto& p : model->parameters())
    if (p.requires_grad()) params.push_back(p);
  const double lr = cfg.get<double>("optim.lr"), wd = cfg.get<double>("optim.weight_decay");
  if (cfg.get<std::string>("optim.name") == "sgd")
    return std::make_unique<torch::optim::SGD>(
        params, torch::optim::SGDOptions(lr).momentum(cfg.get<double>("optim.momentum")).weight_decay(wd).nesterov(true));
  return std::make_unique<FusedAdam>(params, torch::optim::AdamOptions(lr).weight_decay(wd));
}

void set_lr(torch::optim::Optimizer& opt, double lr) {
  for (auto& group : opt.param_groups()) group.options().set_lr(lr);
}

// Fingerprint of the training set: item count, classes and a hash of labels and paths.
nlohmann::json dataset_fingerprint(const data::Dataset& ds) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](const std::string& s) {
    for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  };
  for (size_t i = 0; i < ds.size(); ++i) {
    mix(std::to_string(ds.label(i)));
    if (i < 16 || i + 16 >= ds.size()) mix(ds.path(i));
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return {{"items", ds.size()}, {"classes", ds.classes().names()}, {"hash", hex}};
}

// Top-1 accuracy of the model's own classifier on the test split (classes matched by name).
// [distributed] each rank scores its shard of the test set with the same model (rank 0's
// buffers were broadcast); correct/total are summed over the ranks.
double test_accuracy(const config::Config& cfg, models::EmbeddingModel& model, const data::ClassMap& train_classes,
                     Distributed& dist) {
  const auto full = data::open_dataset(dataset_spec(cfg, cfg.get<std::string>("data.test_split")));
  const auto test = dist.enabled() ? data::apply_shard(full, dist.rank(), dist.world_size()) : full;
  std::vector<int64_t> to_train(test->classes().size(), -1);
  for (size_t c = 0; c < to_train.size(); ++c)
    to_train[c] = train_classes.label(test->classes().name(static_cast<int64_t>(c))).value_or(-1);
  data::LoaderOptions lo;
  lo.batch_size = 256;
  lo.shuffle = false;
  lo.workers = cfg.get<int>("data.workers");
  data::Loader loader(test, transform_options(cfg, false), lo);
  loader.start_epoch(0);
  torch::NoGradGuard no_grad;
  model->eval();
  int64_t correct = 0, total = 0;
  data::Batch b;
  while (loader.next(b)) {
    const auto x = torch::from_blob(b.images.data(), {b.n, b.c, b.h, b.w});
    const auto pred = model->classifier->forward(model->forward(x)).argmax(1);
    const auto* p = pred.data_ptr<int64_t>();
    for (int64_t i = 0; i < b.n; ++i) {
      if (b.labels[i] < 0) continue;
      ++total;
      correct += (p[i] == to_train[b.labels[i]]);
    }
  }
  model->train();
  auto counts = torch::tensor({correct, total}, torch::kInt64);
  dist.all_reduce_sum(counts, "all-reduce of the test accuracy counts");
  correct = counts[0].item<int64_t>(), total = counts[1].item<int64_t>();
  return total ? static_cast<double>(correct) / static_cast<double>(total) : -1.0;
}

}  // namespace

TrainResult train(const config::Config& cfg, const TrainOptions& options) {
  // [distributed] world 1 without RANK/WORLD_SIZE (distributed.h); only rank 0 writes
  // config, classes, meta, log and checkpoint, and prints progress.
  Distributed dist = Distributed::from_env();
  const bool main_rank = dist.is_main();
  // [distributed] threads = 0 means all cores shared by the ranks on this machine.
  int threads = cfg.get<int>("threads");
  if (threads == 0 && dist.local_world_size() > 1)
    threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / dist.local_world_size());
  threads = set_threads(threads);
  const std::string dir = cfg.get<std::string>("output_dir");
  ensure_writable_dir(dir);
  const RunPaths paths{dir};
  auto say = [&](const std::string& line) {
    if (!options.quiet && main_rank) std::printf("[%s] %s\n", dir.c_str(), line.c_str()), std::fflush(stdout);
  };

  const auto meta_before = read_meta(dir);
  const std::string hash = cfg.hash();
  int64_t start_epoch = 0;
  if (options.resume) {
    DT_CHECK(std::filesystem::exists(paths.checkpoint()), "--resume: no checkpoint in ", dir);
    DT_CHECK(meta_before.value("config_hash", std::string()) == hash, "--resume: the config differs from the one ",
             dir, " was started with (hash ", meta_before.value("config_hash", std::string("?")), " vs ", hash, ")");
    // [distributed] the shards, per-rank batch and BN statistics depend on the world size.
    const int64_t world_before = meta_before.value("world_size", int64_t{1});
    DT_CHECK(world_before == dist.world_size(), "--resume: ", dir, " was trained with world size ", world_before,
             " but this run has world size ", dist.world_size(), ": resume with the same number of ranks");
  }
  // [distributed] random sampler: every rank gets optim.batch_size / world items per step.
  // P×K sampler: every rank takes whole P×K batches (global batch world·P·K).
  const int64_t global_batch = cfg.get<int64_t>("optim.batch_size");
  const bool split_batch = cfg.get<std::string>("data.sampler") == "random";
  DT_CHECK(!split_batch || global_batch % dist.world_size() == 0, "optim.batch_size ", global_batch,
           " must be divisible by the world size ", dist.world_size(), " (each rank takes an equal part)");

  const auto train_set = data::open_dataset(dataset_spec(cfg));
  const auto& classes = train_set->classes();
  const std::string precision = cfg.get<std::string>("optim.precision");
  say("training set: " + std::to_string(train_set->size()) + " images, " + std::to_string(classes.size()) +
      " classes; " + std::to_string(threads) + " threads" +
      (precision == "fp32" ? "" : ", " + precision) +
      (dist.enabled() ? " per rank, " + std::to_string(dist.world_size()) + " ranks" : ""));
  if (main_rank) {
    cfg.save(paths.config());
    classes.save(paths.classes());
  }

  const auto seed = static_cast<uint64_t>(cfg.get<int64_t>("seed"));
  torch::manual_seed(seed);
  models::EmbeddingModel model(model_spec(cfg, static_cast<int64_t>(classes.size())));
  auto optimizer = make_optimizer(cfg, model);
  if (options.resume) {
    start_epoch = load_checkpoint(paths.checkpoint(), model, optimizer.get());
    say("resuming after epoch " + std::to_string(start_epoch));
  }
  dist.broadcast_parameters(*model);  // [distributed] identical start on every rank
  Objective objective(cfg, train_set, dir, say, &dist);

  nlohmann::json meta = {{"backbone", model->spec.backbone},
                         {"embedding_dim", model->embedding_dim()},
                         {"num_classes", classes.size()},
                         {"loss", cfg.get<std::string>("loss.type")},
                         {"compat_method", objective.method()},
                         {"dataset", dataset_fingerprint(*train_set)},
                         {"code_version", code_version()},
                         {"provenance", provenance_json()},
                         {"config_hash", hash},
                         {"precision", precision},
                         {"world_size", dist.world_size()},
                         {"epochs_done", start_epoch},
                         {"complete", false}};
  // The old runs this one is compatible with: if one is retrained, this one is stale.
  if (objective.method() != "independent") {
    nlohmann::json hashes = nlohmann::json::array();
    for (int64_t i = 0; i < cfg.entries("old"); ++i) {
      const auto path = cfg.get<std::string>("old." + std::to_string(i) + ".path");
      hashes.push_back(std::filesystem::is_directory(path) ? read_meta(path).value("config_hash", std::string())
                                                           : std::string());
    }
    if (!hashes[0].get<std::string>().empty()) meta["old_config_hash"] = hashes[0];
    if (hashes.size() > 1) meta["old_config_hashes"] = hashes;
  }
  if (main_rank) write_text_atomic(paths.meta(), meta.dump(2));

  const int64_t epochs = cfg.get<int64_t>("optim.epochs");
  data::LoaderOptions loader_opts = loader_options(cfg, true);
  loader_opts.rank = dist.rank();  // [distributed] this rank's shard of every epoch
  loader_opts.world_size = dist.world_size();
  if (split_batch) loader_opts.batch_size = global_batch / dist.world_size();
  data::Loader loader(train_set, transform_options(cfg, true), loader_opts);
  const int64_t iters = loader.batches_per_epoch();
  DT_CHECK(iters > 0, "training set of ", train_set->size(), " images gives no batch");
  const int64_t total_iters = epochs * iters;
  const int64_t warmup = static_cast<int64_t>(cfg.get<double>("optim.warmup_epochs") * static_cast<double>(iters));
  const auto milestones = cfg.get<std::vector<int64_t>>("optim.milestones");
  const int64_t log_every = std::max<int64_t>(1, cfg.get<int64_t>("log_every"));

  std::ofstream log;
  if (main_rank) {
    log.open(paths.log(), options.resume ? std::ios::app : std::ios::trunc);
    DT_CHECK(log.good(), "cannot write ", paths.log());
  }
  std::vector<torch::Tensor> trainable;  // [distributed] gradients to average, in a fixed order
  for (auto& p : model->parameters())
    if (p.requires_grad()) trainable.push_back(p);
  TrainResult result;
  result.run_dir = dir;
  const auto run_start = Clock::now();
  for (int64_t epoch = start_epoch; epoch < epochs; ++epoch) {
    // Every random draw of the epoch derives from (seed, epoch): resume is exact.
    torch::manual_seed(seed * 1000003ull + static_cast<uint64_t>(epoch));
    model->train();
    loader.start_epoch(epoch);
    std::map<std::string, double> sums;
    int64_t seen = 0, step = 0;
    const auto epoch_start = Clock::now();
    data::Batch batch;
    while (loader.next(batch)) {
      const int64_t it = epoch * iters + step;
      const double lr = learning_rate(cfg.get<std::string>("optim.schedule"), cfg.get<double>("optim.lr"), it,
                                      total_iters, warmup, iters, milestones, cfg.get<double>("optim.gamma"));
      set_lr(*optimizer, lr);
      const auto x = torch::from_blob(batch.images.data(), {batch.n, batch.c, batch.h, batch.w});
      const auto y = torch::from_blob(batch.labels.data(), {batch.n}, torch::kInt64);
      torch::Tensor e;
      {
        ForwardPrecision cast(precision);
        e = model->forward(x);
      }
      e = e.to(torch::kFloat);  // losses in float32 (a no-op in fp32)
      const auto terms = objective.terms(x, e, y, *model);
      torch::Tensor total = torch::zeros({});
      nlohmann::json rec = {{"epoch", epoch + 1}, {"step", step + 1}, {"iter", it + 1}, {"lr", lr}};
      for (const auto& t : terms) {
        const double v = t.value.item<double>();
        DT_CHECK(std::isfinite(v), "loss term '", t.name, "' is ", v, " at epoch ", epoch + 1, " step ", step + 1,
                 " (iteration ", it + 1, "); stopping. The last good checkpoint is ", paths.checkpoint(),
                 " (epoch ", epoch, ")");
        total = total + t.weight * t.value;
        sums[t.name] += v * static_cast<double>(batch.n);
        rec[t.name] = v;
      }
      optimizer->zero_grad();
      total.backward();
      dist.all_reduce_gradients(trainable);  // [distributed] average over the ranks
      optimizer->step();
      seen += batch.n;
      ++step;
      sums["total"] += total.item<double>() * static_cast<double>(batch.n);
      rec["total"] = total.item<double>();
      if (step % log_every == 0 || step == iters) {
        const double el = seconds_since(epoch_start);
        const double ips = static_cast<double>(seen * dist.world_size()) / std::max(el, 1e-9);
        const double eta = static_cast<double>((total_iters - it - 1) * cfg.get<int64_t>("optim.batch_size")) / ips;
        rec["img_per_s"] = ips;
        if (main_rank) log << rec.dump() << '\n';
        std::string line = "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(epochs) + " step " +
                           std::to_string(step) + "/" + std::to_string(iters);
        char buf[64];
        std::snprintf(buf, sizeof buf, " loss %.4f", total.item<double>());
        line += buf;
        for (const auto& t : terms) {
          std::snprintf(buf, sizeof buf, " %s %.4f", t.name.c_str(), t.value.item<double>());
          line += buf;
        }
        std::snprintf(buf, sizeof buf, " lr %.2e %.0f img/s ETA %s", lr, ips, fmt_duration(eta).c_str());
        say(line + buf);
      }
    }
    // [distributed] epoch means over all ranks' items; BN running statistics from rank 0
    // (what is saved), so every rank evaluates the same model.
    if (dist.enabled()) {
      std::vector<double> v{static_cast<double>(seen)};
      for (auto& kv : sums) v.push_back(kv.second);
      auto t = torch::tensor(v, torch::kFloat64);
      dist.all_reduce_sum(t, "all-reduce of the epoch loss sums");
      seen = static_cast<int64_t>(t[0].item<double>());
      int64_t k = 1;
      for (auto& kv : sums) kv.second = t[k++].item<double>();
      dist.broadcast_buffers(*model);
    }
    result.epoch_seconds = seconds_since(epoch_start);
    result.images_per_second = static_cast<double>(seen) / result.epoch_seconds;
    nlohmann::json er = {{"epoch", epoch + 1}, {"images", seen}, {"seconds", result.epoch_seconds},
                         {"img_per_s", result.images_per_second}};
    for (auto& [k, v] : sums) er["mean_" + k] = v / static_cast<double>(std::max<int64_t>(1, seen));
    if (cfg.get<bool>("test_accuracy")) {
      result.test_accuracy = test_accuracy(cfg, model, classes, dist);
      er["test_top1"] = result.test_accuracy;
    }
    meta["epochs_done"] = epoch + 1;
    if (main_rank) {
      save_checkpoint(paths.checkpoint(), model, optimizer.get(), epoch + 1);
      write_text_atomic(paths.meta(), meta.dump(2));
      log << er.dump() << '\n';
      log.flush();
    }
    char buf[160];
    std::snprintf(buf, sizeof buf, "epoch %lld done in %.1f s (%.0f img/s)%s", static_cast<long long>(epoch + 1),
                  result.epoch_seconds, result.images_per_second,
                  result.test_accuracy >= 0
                      ? (", test top-1 " + std::to_string(100.0 * result.test_accuracy).substr(0, 5) + "%").c_str()
                      : "");
    say(buf);
  }
  result.epochs = epochs;
  meta["complete"] = true;
  meta["train_seconds"] = seconds_since(run_start);
  if (main_rank) write_text_atomic(paths.meta(), meta.dump(2));
  // [distributed] no rank reports success before rank 0's checkpoint and meta are on disk.
  dist.barrier("final barrier (waiting for rank 0 to write the run directory)");
  return result;
}

}  // namespace dualtune::engine

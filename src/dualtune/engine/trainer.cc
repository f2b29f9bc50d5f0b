#include "dualtune/engine/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <thread>

#include <nlohmann/json.hpp>

#include "dualtune/data/loader.h"
#include "dualtune/data/subset.h"
#include "dualtune/engine/checkpoint.h"
#include "dualtune/engine/device.h"
#include "dualtune/engine/distributed.h"
#include "dualtune/engine/fused_adam.h"
#include "dualtune/engine/objective.h"
#include "dualtune/engine/precision.h"
#include "dualtune/engine/schedule.h"
#include "dualtune/engine/settings.h"
#include "dualtune/gallery/fault.h"
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

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimizerOptions& o, models::EmbeddingModel& model) {
  std::vector<torch::Tensor> params;
  for (auto& p : model->parameters())
    if (p.requires_grad()) params.push_back(p);
  const double lr = o.lr, wd = o.weight_decay;
  if (o.name == "sgd")
    return std::make_unique<torch::optim::SGD>(
        params, torch::optim::SGDOptions(lr).momentum(o.momentum).weight_decay(wd).nesterov(true));
  // The fused step is a CPU pass (fused_adam.h); another device takes torch's own Adam
  // (the same algorithm, state and checkpoint format).
  if (!params.empty() && !params.front().is_cpu())
    return std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(lr).weight_decay(wd));
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
// On the CPU the embeddings come from the inference path extraction uses
// (EmbeddingModelImpl::folded_inference: BatchNorm folded into the convolutions, in the
// run's precision): on the demo's 10,000 test images in bf16, 2.8 s instead of 9 s with
// forward() in eval mode, every epoch of every training. The training itself does not
// see it. [distributed] each rank scores its shard of the test set with the same model
// (rank 0's buffers were broadcast); correct/total are summed over the ranks.
double test_accuracy(const TrainSettings& s, models::EmbeddingModel& model, const data::ClassMap& train_classes,
                     Distributed& dist, const torch::Device& device, const std::string& precision) {
  const auto full = data::open_dataset(s.test_data);
  const auto test = dist.enabled() ? data::apply_shard(full, dist.rank(), dist.world_size()) : full;
  std::vector<int64_t> to_train(test->classes().size(), -1);
  for (size_t c = 0; c < to_train.size(); ++c)
    to_train[c] = train_classes.label(test->classes().name(static_cast<int64_t>(c))).value_or(-1);
  data::LoaderOptions lo;
  lo.batch_size = 256;
  lo.shuffle = false;
  lo.workers = s.loader.workers;
  data::Loader loader(test, s.test_transform, lo);
  loader.start_epoch(0);
  torch::NoGradGuard no_grad;
  model->eval();
  models::InferenceFn embed = [&model](const torch::Tensor& x) { return model->forward(x); };
  if (device.is_cpu()) embed = model->folded_inference(precision == "bf16");  // forward() where oneDNN fails
  int64_t correct = 0, total = 0;
  data::Batch b;
  while (loader.next(b)) {
    const auto x = torch::from_blob(b.images.data(), {b.n, b.c, b.h, b.w}).to(device);
    const auto pred = model->classifier->forward(embed(x)).argmax(1).to(torch::kCPU);
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


// One training run, in the order it happens: the constructor sets up (threads and run
// directory, data, model, optimizer and objective, meta.json, loader and log); run()
// trains epoch by epoch (train_epoch, then finish_epoch: test accuracy, checkpoint,
// meta, log) and finish() marks the run complete.
// [distributed] world 1 without RANK/WORLD_SIZE (distributed.h); only rank 0 writes
// config, classes, meta, log and checkpoint, and prints progress.
class TrainingRun {
 public:
  TrainingRun(const TrainSettings& settings, const TrainOptions& options);
  TrainResult run();

 private:
  struct EpochStats {
    std::map<std::string, double> sums;  ///< per term (and "total"): Σ value · batch size
    int64_t seen = 0;                    ///< images
    double seconds = 0;
  };

  void say(const std::string& line) const;
  void set_up_run_dir();
  void set_up_model();
  void use_module_copy(models::ModelSpec& spec) const;
  void write_initial_meta();
  void set_up_loader();
  EpochStats train_epoch(int64_t epoch);
  void train_step(data::Batch& batch, int64_t epoch, int64_t step, Clock::time_point epoch_start, EpochStats& stats);
  void finish_epoch(int64_t epoch, const EpochStats& stats);
  void finish();

  const TrainSettings& s_;
  const TrainOptions options_;
  Distributed dist_;
  const bool main_rank_;
  const RunPaths paths_;
  const ResolvedDevice device_;        // device: as it runs here (auto resolved), before anything else
  const ResolvedPrecision precision_;  // optim.precision as it runs here (auto resolved)
  int threads_ = 0;
  bool split_batch_ = false;
  int64_t start_epoch_ = 0;
  std::shared_ptr<data::Dataset> train_set_;
  models::EmbeddingModel model_{nullptr};
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::unique_ptr<Objective> objective_;
  nlohmann::json meta_;
  nlohmann::json init_;  // model.init's summary for meta.json (kept from the first start on --resume)
  std::unique_ptr<data::Loader> loader_;
  int64_t iters_ = 0, total_iters_ = 0, warmup_iters_ = 0, log_every_ = 1;
  std::ofstream log_;
  std::vector<torch::Tensor> trainable_;  // [distributed] gradients to average, in a fixed order
  TrainResult result_;
  Clock::time_point run_start_;
};

TrainingRun::TrainingRun(const TrainSettings& settings, const TrainOptions& options)
    : s_(settings),
      options_(options),
      dist_(Distributed::from_env()),
      main_rank_(dist_.is_main()),
      paths_{settings.run.output_dir},
      device_(resolve_device(settings.device)),
      precision_(resolve_precision(settings.optim.precision)) {
  set_up_run_dir();
  set_up_model();
  write_initial_meta();
  set_up_loader();
}

void TrainingRun::say(const std::string& line) const {
  if (!options_.quiet && main_rank_) std::printf("[%s] %s\n", paths_.dir.c_str(), line.c_str()), std::fflush(stdout);
}

// Threads, the run directory, the --resume checks and the per-rank batch.
void TrainingRun::set_up_run_dir() {
  // [distributed] threads = 0 means all cores shared by the ranks on this machine.
  int threads = s_.run.threads;
  if (threads == 0 && dist_.local_world_size() > 1)
    threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / dist_.local_world_size());
  threads_ = set_threads(threads);
  const std::string& dir = paths_.dir;
  ensure_writable_dir(dir);

  const auto meta_before = read_meta(dir);
  const std::string& hash = s_.run.config_hash;
  if (options_.resume) {
    DT_CHECK(std::filesystem::exists(paths_.checkpoint()), "--resume: no checkpoint in ", dir);
    DT_CHECK(meta_before.value("config_hash", std::string()) == hash, "--resume: the config differs from the one ",
             dir, " was started with (hash ", meta_before.value("config_hash", std::string("?")), " vs ", hash, ")");
    // [distributed] the shards, per-rank batch and BN statistics depend on the world size.
    const int64_t world_before = meta_before.value("world_size", int64_t{1});
    DT_CHECK(world_before == dist_.world_size(), "--resume: ", dir, " was trained with world size ", world_before,
             " but this run has world size ", dist_.world_size(), ": resume with the same number of ranks");
  }
  // [distributed] random sampler: every rank gets optim.batch_size / world items per step.
  // P×K sampler: every rank takes whole P×K batches (global batch world·P·K).
  const int64_t global_batch = s_.loader.batch_size;
  split_batch_ = s_.loader.sampler == "random";
  DT_CHECK(!split_batch_ || global_batch % dist_.world_size() == 0, "optim.batch_size ", global_batch,
           " must be divisible by the world size ", dist_.world_size(), " (each rank takes an equal part)");
}

// The training set (and config.yml, classes.json), the model, its optimizer (restored on
// --resume) and the objective.
void TrainingRun::set_up_model() {
  train_set_ = data::open_dataset(s_.train_data);
  const auto& classes = train_set_->classes();
  const std::string& requested = s_.optim.precision;
  const std::string precision = requested == "fp32" ? "" : ", " + precision_.name + (requested == "auto" ? " (auto)" : "");
  say("training set: " + std::to_string(train_set_->size()) + " images, " + std::to_string(classes.size()) +
      " classes; " + std::to_string(threads_) + " threads" + precision + (device_.device.is_cpu() ? "" : ", on " + device_.name) +
      (dist_.enabled() ? " per rank, " + std::to_string(dist_.world_size()) + " ranks" : ""));
  if (main_rank_) {
    if (!s_.run.config_yaml.empty()) write_text_atomic(paths_.config(), s_.run.config_yaml);
    classes.save(paths_.classes());
  }

  torch::manual_seed(s_.run.seed);
  models::ModelSpec spec = s_.model;
  spec.num_classes = static_cast<int64_t>(classes.size());
  if (spec.backbone == "torchscript") use_module_copy(spec);
  model_ = models::EmbeddingModel(spec);  // a torchscript module is checked here, before any copy
  if (spec.backbone == "torchscript" && !options_.resume && main_rank_) {
    write_path_atomic(paths_.backbone_module(), [&](const std::string& tmp) {
      std::filesystem::copy_file(spec.path, tmp, std::filesystem::copy_options::overwrite_existing);
    });
  }
  // Moved before the optimizer sees its parameters; init and resume copy onto the device.
  model_->to(device_.device);
  optimizer_ = make_optimizer(s_.optim, model_);
  if (options_.resume) {
    // The checkpoint holds the initialised-then-trained weights: resume wins over init.
    start_epoch_ = load_checkpoint(paths_.checkpoint(), model_, optimizer_.get());
    say("resuming after epoch " + std::to_string(start_epoch_));
    init_ = read_meta(paths_.dir).value("init", nlohmann::json());
  } else if (!s_.init.path.empty()) {
    const InitReport report = initialize_model(s_.init, *model_, classes);
    say(report.summary());
    init_ = report.summary_json();
    if (main_rank_) write_text_atomic(paths_.init_report(), report.to_json().dump(2));
  }
  dist_.broadcast_parameters(*model_);  // [distributed] identical start on every rank
  ObjectiveOptions objective = s_.objective;
  objective.device = device_.name;
  objective_ = std::make_unique<Objective>(std::move(objective), train_set_, paths_.dir,
                                           [this](const std::string& line) { say(line); }, &dist_);
}

// A torchscript backbone's module lives in the run directory (run_dir.h: backbone.pt):
// a fresh run builds from model.path and, once the module passed its checks, rank 0
// copies it there (every rank reads model.path itself, so none waits for the copy);
// --resume builds from the copy, the module the checkpoint belongs to, whatever
// happened to model.path since.
void TrainingRun::use_module_copy(models::ModelSpec& spec) const {
  if (options_.resume) {
    spec.path = paths_.backbone_module();
    DT_CHECK(std::filesystem::exists(spec.path), "--resume: ", paths_.dir, " has no backbone.pt, the copy of the ",
             "TorchScript backbone it started from");
    return;
  }
  DT_CHECK(std::filesystem::is_regular_file(spec.path), "model.path ", spec.path,
           ": expected the TorchScript file of model.backbone torchscript, found ",
           std::filesystem::exists(spec.path) ? "no regular file" : "nothing");
}

void TrainingRun::write_initial_meta() {
  meta_ = {{"backbone", model_->spec.backbone},
           {"embedding_dim", model_->embedding_dim()},
           {"num_classes", train_set_->classes().size()},
           {"loss", s_.objective.loss.type},
           {"compat_method", objective_->method()},
           {"dataset", dataset_fingerprint(*train_set_)},
           {"code_version", code_version()},
           {"provenance", provenance_json()},
           {"config_hash", s_.run.config_hash},
           {"precision", precision_.name},
           {"precision_reason", precision_.reason},
           {"device", device_.name},
           {"device_reason", device_.reason},
           {"world_size", dist_.world_size()},
           {"epochs_done", start_epoch_},
           {"complete", false}};
  if (!init_.is_null()) meta_["init"] = init_;
  if (s_.model.backbone == "torchscript") meta_["backbone_source"] = s_.model.path;  // copied to backbone.pt
  // The old runs this one is compatible with: if one is retrained, this one is stale.
  if (objective_->method() != "independent") {
    nlohmann::json hashes = nlohmann::json::array();
    for (const auto& old : s_.objective.old) {
      hashes.push_back(std::filesystem::is_directory(old.path) ? read_meta(old.path).value("config_hash", std::string())
                                                               : std::string());
    }
    if (!hashes.empty() && !hashes[0].get<std::string>().empty()) meta_["old_config_hash"] = hashes[0];
    if (hashes.size() > 1) meta_["old_config_hashes"] = hashes;
  }
  if (main_rank_) write_text_atomic(paths_.meta(), meta_.dump(2));
}

// This rank's loader, the schedule's lengths in iterations, and train_log.jsonl.
void TrainingRun::set_up_loader() {
  data::LoaderOptions loader_opts = s_.loader;
  loader_opts.rank = dist_.rank();  // [distributed] this rank's shard of every epoch
  loader_opts.world_size = dist_.world_size();
  if (split_batch_) loader_opts.batch_size = s_.loader.batch_size / dist_.world_size();
  loader_ = std::make_unique<data::Loader>(train_set_, s_.train_transform, loader_opts);
  iters_ = loader_->batches_per_epoch();
  DT_CHECK(iters_ > 0, "training set of ", train_set_->size(), " images gives no batch");
  total_iters_ = s_.optim.epochs * iters_;
  warmup_iters_ = static_cast<int64_t>(s_.optim.warmup_epochs * static_cast<double>(iters_));
  log_every_ = std::max<int64_t>(1, s_.log_every);

  if (main_rank_) {
    log_.open(paths_.log(), options_.resume ? std::ios::app : std::ios::trunc);
    DT_CHECK(log_.good(), "cannot write ", paths_.log());
  }
  for (auto& p : model_->parameters())
    if (p.requires_grad()) trainable_.push_back(p);
  result_.run_dir = paths_.dir;
}

TrainResult TrainingRun::run() {
  run_start_ = Clock::now();
  for (int64_t epoch = start_epoch_; epoch < s_.optim.epochs; ++epoch) finish_epoch(epoch, train_epoch(epoch));
  finish();
  return result_;
}

TrainingRun::EpochStats TrainingRun::train_epoch(int64_t epoch) {
  // Every random draw of the epoch derives from (seed, epoch): resume is exact.
  torch::manual_seed(s_.run.seed * 1000003ull + static_cast<uint64_t>(epoch));
  model_->train();
  loader_->start_epoch(epoch);
  EpochStats stats;
  const auto epoch_start = Clock::now();
  data::Batch batch;
  for (int64_t step = 0; loader_->next(batch); ++step) train_step(batch, epoch, step, epoch_start, stats);
  // [distributed] epoch means over all ranks' items; BN running statistics from rank 0
  // (what is saved), so every rank evaluates the same model.
  if (dist_.enabled()) {
    std::vector<double> v{static_cast<double>(stats.seen)};
    for (auto& kv : stats.sums) v.push_back(kv.second);
    auto t = torch::tensor(v, torch::kFloat64);
    dist_.all_reduce_sum(t, "all-reduce of the epoch loss sums");
    stats.seen = static_cast<int64_t>(t[0].item<double>());
    int64_t k = 1;
    for (auto& kv : stats.sums) kv.second = t[k++].item<double>();
    dist_.broadcast_buffers(*model_);
  }
  stats.seconds = seconds_since(epoch_start);
  return stats;
}

// One optimizer step on `batch` (step-th of the epoch, from 0); every log_every steps a
// JSON record and a progress line.
void TrainingRun::train_step(data::Batch& batch, int64_t epoch, int64_t step, Clock::time_point epoch_start,
                             EpochStats& stats) {
  const OptimizerOptions& o = s_.optim;
  const int64_t it = epoch * iters_ + step;
  const double lr = learning_rate(o.schedule, o.lr, it, total_iters_, warmup_iters_, iters_, o.milestones, o.gamma);
  set_lr(*optimizer_, lr);
  // Decoded on the CPU; one copy to the model's device (none on the CPU).
  const auto x = torch::from_blob(batch.images.data(), {batch.n, batch.c, batch.h, batch.w}).to(device_.device);
  const auto y = torch::from_blob(batch.labels.data(), {batch.n}, torch::kInt64).to(device_.device);
  torch::Tensor e;
  {
    ForwardPrecision cast(precision_.name);
    e = model_->forward(x);
  }
  e = e.to(torch::kFloat);  // losses in float32 (a no-op in fp32)
  const auto terms = objective_->terms(x, e, y, *model_);
  torch::Tensor total = torch::zeros({}, e.options());
  nlohmann::json rec = {{"epoch", epoch + 1}, {"step", step + 1}, {"iter", it + 1}, {"lr", lr}};
  for (const auto& t : terms) {
    const double v = t.value.item<double>();
    DT_CHECK(std::isfinite(v), "loss term '", t.name, "' is ", v, " at epoch ", epoch + 1, " step ", step + 1,
             " (iteration ", it + 1, "); stopping. The last good checkpoint is ", paths_.checkpoint(), " (epoch ",
             epoch, ")");
    total = total + t.weight * t.value;
    stats.sums[t.name] += v * static_cast<double>(batch.n);
    rec[t.name] = v;
  }
  optimizer_->zero_grad();
  total.backward();
  dist_.all_reduce_gradients(trainable_);  // [distributed] average over the ranks
  optimizer_->step();
  stats.seen += batch.n;
  const int64_t done = step + 1;
  stats.sums["total"] += total.item<double>() * static_cast<double>(batch.n);
  rec["total"] = total.item<double>();
  if (done % log_every_ != 0 && done != iters_) return;
  const double el = seconds_since(epoch_start);
  const double ips = static_cast<double>(stats.seen * dist_.world_size()) / std::max(el, 1e-9);
  const double eta = static_cast<double>((total_iters_ - it - 1) * s_.loader.batch_size) / ips;
  rec["img_per_s"] = ips;
  if (main_rank_) log_ << rec.dump() << '\n';
  std::string line = "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(o.epochs) + " step " +
                     std::to_string(done) + "/" + std::to_string(iters_);
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

// The epoch's record and test accuracy; checkpoint, meta.json and log on disk.
void TrainingRun::finish_epoch(int64_t epoch, const EpochStats& stats) {
  result_.epoch_seconds = stats.seconds;
  result_.images_per_second = static_cast<double>(stats.seen) / result_.epoch_seconds;
  nlohmann::json er = {{"epoch", epoch + 1}, {"images", stats.seen}, {"seconds", result_.epoch_seconds},
                       {"img_per_s", result_.images_per_second}};
  for (auto& [k, v] : stats.sums) er["mean_" + k] = v / static_cast<double>(std::max<int64_t>(1, stats.seen));
  if (s_.test_accuracy) {
    result_.test_accuracy = test_accuracy(s_, model_, train_set_->classes(), dist_, device_.device, precision_.name);
    er["test_top1"] = result_.test_accuracy;
  }
  meta_["epochs_done"] = epoch + 1;
  if (main_rank_) {
    save_checkpoint(paths_.checkpoint(), model_, optimizer_.get(), epoch + 1);
    write_text_atomic(paths_.meta(), meta_.dump(2));
    log_ << er.dump() << '\n';
    log_.flush();
  }
  gallery::fault_point("after-epoch");  // crash tests: SIGKILL once an epoch is on disk
  char buf[160];
  std::snprintf(buf, sizeof buf, "epoch %lld done in %.1f s (%.0f img/s)%s", static_cast<long long>(epoch + 1),
                result_.epoch_seconds, result_.images_per_second,
                result_.test_accuracy >= 0
                    ? (", test top-1 " + std::to_string(100.0 * result_.test_accuracy).substr(0, 5) + "%").c_str()
                    : "");
  say(buf);
}

void TrainingRun::finish() {
  result_.epochs = s_.optim.epochs;
  meta_["complete"] = true;
  meta_["train_seconds"] = seconds_since(run_start_);
  if (main_rank_) write_text_atomic(paths_.meta(), meta_.dump(2));
  // [distributed] no rank reports success before rank 0's checkpoint and meta are on disk.
  dist_.barrier("final barrier (waiting for rank 0 to write the run directory)");
}

}  // namespace

TrainResult train(const TrainSettings& settings, const TrainOptions& options) {
  return TrainingRun(settings, options).run();
}

TrainResult train(const config::Config& cfg, const TrainOptions& options) {
  return train(train_settings(cfg), options);
}

}  // namespace dualtune::engine

#include "dualtune/engine/settings.h"

#include <filesystem>
#include <thread>
#include <utility>

#include "dualtune/engine/objective.h"
#include "dualtune/engine/trainer.h"
#include "dualtune/engine/transform_run.h"
#include "dualtune/models/embedding_model.h"
#include "dualtune/util/error.h"
#include "dualtune/util/run_dir.h"

namespace dualtune::engine {
namespace {

// The keys of InputSpec, listed once: input_spec() reads them, check_same_input() names
// them in its errors.
constexpr std::pair<const char*, int64_t InputSpec::*> kInputSizes[] = {
    {"data.height", &InputSpec::height}, {"data.width", &InputSpec::width}, {"data.channels", &InputSpec::channels}};
constexpr std::pair<const char*, std::vector<double> InputSpec::*> kInputNormalisation[] = {
    {"data.mean", &InputSpec::mean}, {"data.std", &InputSpec::std}};

std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

}  // namespace

RunSettings run_settings(const config::Config& cfg) {
  RunSettings r;
  r.output_dir = cfg.get<std::string>("output_dir");
  r.threads = cfg.get<int>("threads");
  r.seed = static_cast<uint64_t>(cfg.get<int64_t>("seed"));
  r.config_yaml = cfg.dump();
  r.config_hash = cfg.hash();
  return r;
}

data::DatasetSpec dataset_spec(const config::Config& cfg, const std::string& split) {
  data::DatasetSpec s;
  s.format = cfg.get<std::string>("data.format");
  s.root = cfg.get<std::string>("data.root");
  s.split = split.empty() ? cfg.get<std::string>("data.train_split") : split;
  s.classes = cfg.get<std::string>("data.classes");
  s.limit = split.empty() ? cfg.get<int64_t>("data.limit") : 0;
  return s;
}

data::DatasetSpec test_dataset_spec(const config::Config& cfg) {
  return dataset_spec(cfg, cfg.get<std::string>("data.test_split"));
}

InputSpec input_spec(const config::Config& cfg) {
  InputSpec in;
  for (const auto& [key, field] : kInputSizes) in.*field = cfg.get<int64_t>(key);
  for (const auto& [key, field] : kInputNormalisation) in.*field = cfg.get<std::vector<double>>(key);
  return in;
}

data::TransformOptions transform_options(const config::Config& cfg, bool train) {
  const InputSpec in = input_spec(cfg);
  data::TransformOptions t;
  t.height = in.height;
  t.width = in.width;
  t.channels = in.channels;
  t.mean = to_float(in.mean);  // float(double(text)), as get<std::vector<float>> reads it
  t.std = to_float(in.std);
  t.train = train;
  t.flip = cfg.get<bool>("augment.flip");
  t.pad = cfg.get<int64_t>("augment.pad");
  t.erasing = cfg.get<float>("augment.erasing");
  return t;
}

data::LoaderOptions loader_options(const config::Config& cfg, bool train) {
  data::LoaderOptions o;
  o.batch_size = cfg.get<int64_t>("optim.batch_size");
  o.shuffle = train;
  o.drop_last = false;
  o.sampler = train ? cfg.get<std::string>("data.sampler") : "random";
  o.p = cfg.get<int64_t>("data.p");
  o.k = cfg.get<int64_t>("data.k");
  o.workers = cfg.get<int>("data.workers");
  o.seed = static_cast<uint64_t>(cfg.get<int64_t>("seed"));
  return o;
}

models::ModelSpec model_spec(const config::Config& cfg, int64_t num_classes) {
  models::ModelSpec m;
  m.backbone = cfg.get<std::string>("model.backbone");
  m.path = cfg.get<std::string>("model.path");
  m.in_channels = cfg.get<int64_t>("data.channels");
  m.height = cfg.get<int64_t>("data.height");
  m.width = cfg.get<int64_t>("data.width");
  m.embedding_dim = cfg.get<int64_t>("model.embedding_dim");
  m.num_classes = num_classes;
  m.classifier = cfg.get<std::string>("loss.type");
  m.scale = cfg.get<double>("loss.scale");
  return m;
}

ObjectiveOptions objective_options(const config::Config& cfg) {
  ObjectiveOptions o;
  TaskLossOptions& l = o.loss;
  l.type = cfg.get<std::string>("loss.type");
  l.weight = cfg.get<double>("loss.weight");
  l.label_smoothing = cfg.get<double>("loss.label_smoothing");
  l.scale = cfg.get<double>("loss.scale");
  l.margin = cfg.get<double>("loss.margin");
  l.triplet = cfg.get<double>("loss.triplet");
  l.triplet_margin = cfg.get<double>("loss.triplet_margin");

  CompatOptions& c = o.compat;
  c.method = cfg.get<std::string>("compat.method");
  c.l2_weight = cfg.get<double>("compat.l2_weight");
  c.bct_weight = cfg.get<double>("compat.bct_weight");
  c.bct_rescale = cfg.get<bool>("compat.bct_rescale");
  c.proto_form = cfg.get<std::string>("compat.proto_form");
  c.proto_weight = cfg.get<double>("compat.proto_weight");
  c.proto_margin = cfg.get<double>("compat.proto_margin");
  c.proto_margin_unit = cfg.get<std::string>("compat.proto_margin_unit");
  c.proto_scale = cfg.get<double>("compat.proto_scale");
  c.prototypes = cfg.get<std::string>("compat.prototypes");
  c.n2o_weight = cfg.get<double>("compat.n2o_weight");
  c.n2o_extended = cfg.get<bool>("compat.n2o_extended");
  c.o2n_weight = cfg.get<double>("compat.o2n_weight");
  c.mix_weight = cfg.get<double>("compat.mix_weight");
  c.mix_rho = cfg.get<double>("compat.mix_rho");
  c.contrast_weight = cfg.get<double>("compat.contrast_weight");
  c.contrast_temperature = cfg.get<double>("compat.contrast_temperature");
  c.contrast_new_negatives = cfg.get<bool>("compat.contrast_new_negatives");

  o.old.clear();
  for (int64_t i = 0; i < cfg.entries("old"); ++i) {
    const std::string at = "old." + std::to_string(i) + ".";
    OldModelOptions m;
    m.path = cfg.get<std::string>(at + "path");
    m.class_map = cfg.get<std::string>(at + "class_map");
    m.classifier = cfg.get<std::string>(at + "classifier");
    m.weight = cfg.get<double>(at + "weight");
    o.old.push_back(m);
  }
  o.embedding_dim = cfg.get<int64_t>("model.embedding_dim");
  o.input = input_spec(cfg);
  o.prototype_transform = transform_options(cfg, false);
  o.workers = cfg.get<int>("data.workers");
  return o;
}

TrainSettings train_settings(const config::Config& cfg) {
  TrainSettings s;
  s.run = run_settings(cfg);
  s.log_every = cfg.get<int64_t>("log_every");
  s.test_accuracy = cfg.get<bool>("test_accuracy");
  s.train_data = dataset_spec(cfg);
  s.test_data = dataset_spec(cfg, cfg.get<std::string>("data.test_split"));
  s.train_transform = transform_options(cfg, true);
  s.test_transform = transform_options(cfg, false);
  s.loader = loader_options(cfg, true);
  s.model = model_spec(cfg, 0);
  s.init.path = cfg.get<std::string>("model.init");
  s.init.strict = cfg.get<bool>("model.init_strict");
  OptimizerOptions& p = s.optim;
  p.name = cfg.get<std::string>("optim.name");
  p.lr = cfg.get<double>("optim.lr");
  p.weight_decay = cfg.get<double>("optim.weight_decay");
  p.momentum = cfg.get<double>("optim.momentum");
  p.epochs = cfg.get<int64_t>("optim.epochs");
  p.schedule = cfg.get<std::string>("optim.schedule");
  p.warmup_epochs = cfg.get<double>("optim.warmup_epochs");
  p.milestones = cfg.get<std::vector<int64_t>>("optim.milestones");
  p.gamma = cfg.get<double>("optim.gamma");
  p.precision = cfg.get<std::string>("optim.precision");
  s.objective = objective_options(cfg);
  s.device = cfg.get<std::string>("device");
  return s;
}

TransformRunOptions transform_run_options(const config::Config& cfg) {
  TransformRunOptions o;
  o.run = run_settings(cfg);
  o.workers = cfg.get<int>("data.workers");
  o.data = dataset_spec(cfg);
  o.input = input_spec(cfg);
  o.train_transform = transform_options(cfg, true);
  o.test_transform = transform_options(cfg, false);
  o.augmented_passes = cfg.get<int64_t>("transform.augmented_passes");
  o.side_info = cfg.get<std::string>("transform.side_info");
  o.side_dim = cfg.get<int64_t>("transform.side_dim");
  o.width = cfg.get<int64_t>("transform.width");
  o.depth = cfg.get<int64_t>("transform.depth");
  TransformFitOptions& f = o.fit;
  f.epochs = cfg.get<int64_t>("transform.epochs");
  f.batch_size = cfg.get<int64_t>("transform.batch_size");
  f.lr = cfg.get<double>("transform.lr");
  f.weight_decay = cfg.get<double>("transform.weight_decay");
  f.holdout = cfg.get<double>("transform.holdout");
  f.seed = o.run.seed;
  return o;
}

void check_same_input(const InputSpec& input, const std::string& model_path, const std::string& what) {
  if (!std::filesystem::is_directory(model_path)) return;
  const InputSpec other = input_spec(config::Config::load(RunPaths{model_path}.config()));
  for (const auto& [key, field] : kInputSizes) {
    DT_CHECK(other.*field == input.*field, what, " ", model_path, " was trained with ", key, " = ", other.*field,
             " but this run uses ", input.*field, ": both models see the same input batch");
  }
  for (const auto& [key, field] : kInputNormalisation) {
    DT_CHECK(other.*field == input.*field, what, " ", model_path, " was trained with a different ", key,
             ": both models see the same normalised input");
  }
}

int set_threads(int threads) {
  const int n = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(n);
  return n;
}

}  // namespace dualtune::engine

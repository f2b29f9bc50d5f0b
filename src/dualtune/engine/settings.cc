#include "dualtune/engine/settings.h"

#include <filesystem>
#include <thread>

#include "dualtune/models/embedding_model.h"
#include "dualtune/util/error.h"

namespace dualtune::engine {

data::DatasetSpec dataset_spec(const config::Config& cfg, const std::string& split) {
  data::DatasetSpec s;
  s.format = cfg.get<std::string>("data.format");
  s.root = cfg.get<std::string>("data.root");
  s.split = split.empty() ? cfg.get<std::string>("data.train_split") : split;
  s.classes = cfg.get<std::string>("data.classes");
  s.limit = split.empty() ? cfg.get<int64_t>("data.limit") : 0;
  return s;
}

data::TransformOptions transform_options(const config::Config& cfg, bool train) {
  data::TransformOptions t;
  t.height = cfg.get<int64_t>("data.height");
  t.width = cfg.get<int64_t>("data.width");
  t.channels = cfg.get<int64_t>("data.channels");
  t.mean = cfg.get<std::vector<float>>("data.mean");
  t.std = cfg.get<std::vector<float>>("data.std");
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
  m.in_channels = cfg.get<int64_t>("data.channels");
  m.embedding_dim = cfg.get<int64_t>("model.embedding_dim");
  m.num_classes = num_classes;
  m.classifier = cfg.get<std::string>("loss.type");
  m.scale = cfg.get<double>("loss.scale");
  return m;
}

void check_same_input(const config::Config& cfg, const std::string& model_path, const std::string& what) {
  if (!std::filesystem::is_directory(model_path)) return;
  const auto other = config::Config::load(model_path + "/config.yml");
  for (const char* key : {"data.height", "data.width", "data.channels"}) {
    DT_CHECK(other.get<int64_t>(key) == cfg.get<int64_t>(key), what, " ", model_path, " was trained with ", key,
             " = ", other.get<int64_t>(key), " but this run uses ", cfg.get<int64_t>(key),
             ": both models see the same input batch");
  }
  for (const char* key : {"data.mean", "data.std"}) {
    DT_CHECK(other.get<std::vector<double>>(key) == cfg.get<std::vector<double>>(key), what, " ", model_path,
             " was trained with a different ", key, ": both models see the same normalised input");
  }
}

int set_threads(int threads) {
  const int n = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(n);
  return n;
}

}  // namespace dualtune::engine

#include "dualtune/engine/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "dualtune/config/config.h"
#include "dualtune/data/class_map.h"
#include "dualtune/engine/settings.h"
#include "dualtune/models/state_dict_file.h"
#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"
#include "dualtune/util/run_dir.h"

namespace dualtune::engine {

void save_archive_atomic(torch::serialize::OutputArchive& archive, const std::string& path, const std::string& what) {
  try {
    write_path_atomic(path, [&](const std::string& tmp) { archive.save_to(tmp); });
  } catch (const c10::Error& e) {
    DT_THROW("cannot write ", what, path, ": ", e.what_without_backtrace());
  }
}

void save_checkpoint(const std::string& path, models::EmbeddingModel& model, torch::optim::Optimizer* optimizer,
                     int64_t epochs_done) {
  torch::serialize::OutputArchive archive, model_archive, optim_archive;
  model->save(model_archive);
  archive.write("model", model_archive);
  if (optimizer) {
    optimizer->save(optim_archive);
    archive.write("optimizer", optim_archive);
  }
  archive.write("epoch", torch::tensor(epochs_done));
  save_archive_atomic(archive, path, "checkpoint ");
}

int64_t load_checkpoint(const std::string& path, models::EmbeddingModel& model, torch::optim::Optimizer* optimizer) {
  DT_CHECK(std::filesystem::exists(path), "checkpoint ", path, " does not exist");
  try {
    torch::serialize::InputArchive archive, model_archive;
    // Tensors land on the model's device, whichever device wrote the file (a run trained
    // on a GPU opens on a CPU-only machine).
    archive.load_from(path, model->parameters().front().device());
    archive.read("model", model_archive);
    model->load(model_archive);
    models::to_channels_last(*model);  // loaded tensors take the file's strides
    if (optimizer) {
      torch::serialize::InputArchive optim_archive;
      archive.read("optimizer", optim_archive);
      optimizer->load(optim_archive);
    }
    torch::Tensor epoch;
    archive.read("epoch", epoch);
    return epoch.item<int64_t>();
  } catch (const c10::Error& e) {
    DT_THROW("checkpoint ", path, " is corrupt or does not match the model (", model->spec.backbone,
             ", D=", model->embedding_dim(), ", ", model->spec.num_classes, " classes): ", e.what_without_backtrace());
  }
}

void load_state_dict(models::EmbeddingModel& model, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                     const std::string& source) {
  std::map<std::string, torch::Tensor> given(tensors.begin(), tensors.end());
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;
  std::string problems;
  auto note = [&](const std::string& what) {
    if (std::count(problems.begin(), problems.end(), ';') < 5) problems += " " + what + ";";
  };
  auto take = [&](const std::string& name, const torch::Tensor& target) {
    const auto it = given.find(name);
    if (it == given.end()) return note(name + " missing");
    if (it->second.sizes() != target.sizes())
      note(name + " has shape " + c10::str(it->second.sizes()) + ", expected " + c10::str(target.sizes()));
    else copies.emplace_back(target, it->second);
    given.erase(it);
  };
  for (const auto& p : model->named_parameters()) take(p.key(), p.value());
  for (const auto& b : model->named_buffers()) take(b.key(), b.value());
  for (const auto& [name, t] : given) note(name + " is not a tensor of the model");
  DT_CHECK(problems.empty(), source, " does not match the model (", model->spec.backbone, ", D=",
           model->embedding_dim(), ", ", model->spec.num_classes, " classes):", problems);
  torch::NoGradGuard no_grad;
  for (auto& [target, t] : copies) target.copy_(t.to(target.dtype()));
}

models::ModelSpec run_model_spec(const std::string& run_dir) {
  const RunPaths p{run_dir};
  DT_CHECK(std::filesystem::is_directory(run_dir), "model ", run_dir, " is not a run directory");
  DT_CHECK(std::filesystem::exists(p.config()), run_dir, " is not a dualtune run directory: config.yml missing");
  DT_CHECK(std::filesystem::exists(p.classes()), run_dir, ": classes.json missing");
  const auto cfg = config::Config::load(p.config());
  const auto classes = data::ClassMap::load(p.classes());
  auto spec = model_spec(cfg, static_cast<int64_t>(classes.size()));
  if (spec.backbone == "torchscript") {
    spec.path = p.backbone_module();
    DT_CHECK(std::filesystem::exists(spec.path), run_dir, ": backbone.pt missing (the copy of the TorchScript ",
             "backbone ", cfg.get<std::string>("model.path"), " the run was trained from)");
  }
  return spec;
}

models::EmbeddingModel load_run_model(const std::string& run_dir) {
  const RunPaths p{run_dir};
  models::EmbeddingModel model(run_model_spec(run_dir));
  if (!std::filesystem::exists(p.checkpoint()) && std::filesystem::exists(p.state_dict()))
    load_state_dict(model, models::read_state_dict_file(p.state_dict()), p.state_dict());
  else
    load_checkpoint(p.checkpoint(), model, nullptr);
  model->eval();
  return model;
}

}  // namespace dualtune::engine

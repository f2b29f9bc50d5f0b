#include "dualtune/models/old_model.h"

#include <torch/script.h>

#include <filesystem>

#include "dualtune/engine/checkpoint.h"
#include "dualtune/models/exported_old_model.h"
#include "dualtune/util/error.h"

namespace fs = std::filesystem;

namespace dualtune::models {
namespace {

class RunDirOldModel : public OldModel {
 public:
  explicit RunDirOldModel(const std::string& dir) : dir_(dir), model_(engine::load_run_model(dir)) {
    classes_ = data::ClassMap::load(dir + "/classes.json");
    for (auto& p : model_->parameters()) p.requires_grad_(false);
    model_->eval();
    head_.weight = model_->classifier->weight.detach();
    head_.normalized = model_->classifier->normalized;
    head_.scale = model_->classifier->scale;
  }
  torch::Tensor embed(const torch::Tensor& x) override {
    torch::NoGradGuard no_grad;
    model_->eval();
    return model_->forward(x);
  }
  int64_t dim() const override { return model_->embedding_dim(); }
  std::vector<torch::Tensor> state() override {
    auto s = model_->parameters();
    for (auto& b : model_->buffers()) s.push_back(b);
    return s;
  }
  std::string describe() const override {
    return "run " + dir_ + " (" + model_->spec.backbone + ", D=" + std::to_string(dim()) + ", " +
           std::to_string(classes_.size()) + " classes)";
  }

 private:
  std::string dir_;
  EmbeddingModel model_;
};

class ScriptOldModel : public ExportedOldModel {
 public:
  ScriptOldModel(const std::string& path, const std::string& class_map, const std::string& classifier_npy)
      : ExportedOldModel("TorchScript", path, class_map, classifier_npy) {
    try {
      module_ = torch::jit::load(path);
    } catch (const c10::Error& e) {
      DT_THROW("cannot load TorchScript old model ", path, ": ", e.what_without_backtrace());
    }
    module_.eval();
    for (auto p : module_.parameters()) p.requires_grad_(false);
  }
  torch::Tensor embed(const torch::Tensor& x) override {
    torch::NoGradGuard no_grad;
    torch::Tensor out;
    try {
      out = module_.forward({x}).toTensor();
    } catch (const c10::Error& e) {
      DT_THROW("TorchScript old model ", path_, " failed on input ", x.sizes(), ": ", e.what_without_backtrace());
    }
    return checked_embedding(out, x.size(0));
  }
  std::vector<torch::Tensor> state() override {
    std::vector<torch::Tensor> s;
    for (auto p : module_.parameters()) s.push_back(p);
    for (auto b : module_.buffers()) s.push_back(b);
    return s;
  }
  std::string describe() const override { return "TorchScript " + path_ + " (" + classes_summary() + ")"; }

 private:
  torch::jit::Module module_;
};

}  // namespace

std::shared_ptr<OldModel> OldModel::open(const std::string& path, const std::string& class_map,
                                         const std::string& classifier_npy) {
  DT_CHECK(!path.empty(), "no old model given (old.path)");
  DT_CHECK(fs::exists(path), "old model ", path, " does not exist");
  if (fs::is_directory(path)) return std::make_shared<RunDirOldModel>(path);
  if (fs::path(path).extension() == ".onnx") return open_onnx_old_model(path, class_map, classifier_npy);
  return open_torchscript_old_model(path, class_map, classifier_npy);
}

std::shared_ptr<OldModel> open_torchscript_old_model(const std::string& path, const std::string& class_map,
                                                     const std::string& classifier_npy) {
  return std::make_shared<ScriptOldModel>(path, class_map, classifier_npy);
}

}  // namespace dualtune::models

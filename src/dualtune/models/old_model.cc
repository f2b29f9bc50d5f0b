#include "dualtune/models/old_model.h"

#include <torch/script.h>

#include <filesystem>

#include "dualtune/engine/checkpoint.h"
#include "dualtune/features/npy.h"
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
    infer_ = model_->folded_inference();  // frozen: the snapshot stays valid
  }
  torch::Tensor embed(const torch::Tensor& x) override {
    torch::NoGradGuard no_grad;
    return infer_(x);
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
  InferenceFn infer_;
};

class ScriptOldModel : public OldModel {
 public:
  ScriptOldModel(const std::string& path, const std::string& class_map, const std::string& classifier_npy)
      : path_(path) {
    DT_CHECK(!class_map.empty(), "TorchScript old model ", path,
             " needs its class map (old.class_map: JSON {\"classes\": [...]})");
    try {
      module_ = torch::jit::load(path);
    } catch (const c10::Error& e) {
      DT_THROW("cannot load TorchScript old model ", path, ": ", e.what_without_backtrace());
    }
    module_.eval();
    for (auto p : module_.parameters()) p.requires_grad_(false);
    classes_ = data::ClassMap::load(class_map);
    if (!classifier_npy.empty()) {
      const auto a = npy::load(classifier_npy);
      DT_CHECK(a.descr == "<f4" && a.shape.size() == 2, classifier_npy,
               ": expected a float32 Co × Do matrix for the old classifier");
      DT_CHECK(a.shape[0] == static_cast<int64_t>(classes_.size()), classifier_npy, ": old classifier has ",
               a.shape[0], " rows but the class map ", class_map, " has ", classes_.size(), " classes");
      head_.weight = torch::from_blob(const_cast<float*>(a.f32.data()), {a.shape[0], a.shape[1]}).clone();
    }
  }
  torch::Tensor embed(const torch::Tensor& x) override {
    torch::NoGradGuard no_grad;
    torch::Tensor out;
    try {
      out = module_.forward({x}).toTensor();
    } catch (const c10::Error& e) {
      DT_THROW("TorchScript old model ", path_, " failed on input ", x.sizes(), ": ", e.what_without_backtrace());
    }
    DT_CHECK(out.dim() == 2 && out.size(0) == x.size(0), "TorchScript old model ", path_,
             " must return a B × D embedding, returned shape ", out.sizes());
    if (dim_ < 0) {
      dim_ = out.size(1);
      DT_CHECK(!head_.weight.defined() || head_.weight.size(1) == dim_, "old classifier width ",
               head_.weight.size(1), " != old embedding size ", dim_, " of ", path_);
    }
    return out.to(torch::kFloat);
  }
  int64_t dim() const override { return dim_; }
  std::vector<torch::Tensor> state() override {
    std::vector<torch::Tensor> s;
    for (auto p : module_.parameters()) s.push_back(p);
    for (auto b : module_.buffers()) s.push_back(b);
    return s;
  }
  std::string describe() const override {
    return "TorchScript " + path_ + " (" + std::to_string(classes_.size()) + " classes" +
           (head_.weight.defined() ? ", classifier given" : ", no classifier") + ")";
  }

 private:
  std::string path_;
  torch::jit::Module module_;
  int64_t dim_ = -1;
};

}  // namespace

std::shared_ptr<OldModel> OldModel::open(const std::string& path, const std::string& class_map,
                                         const std::string& classifier_npy) {
  DT_CHECK(!path.empty(), "no old model given (old.path)");
  DT_CHECK(fs::exists(path), "old model ", path, " does not exist");
  if (fs::is_directory(path)) return std::make_shared<RunDirOldModel>(path);
  return std::make_shared<ScriptOldModel>(path, class_map, classifier_npy);
}

}  // namespace dualtune::models

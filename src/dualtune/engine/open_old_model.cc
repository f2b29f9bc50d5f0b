#include "dualtune/engine/open_old_model.h"

#include <filesystem>

#include "dualtune/engine/checkpoint.h"
#include "dualtune/models/exported_old_model.h"
#include "dualtune/util/error.h"
#include "dualtune/util/run_dir.h"

namespace fs = std::filesystem;

namespace dualtune::engine {
namespace {

class RunDirOldModel : public models::OldModel {
 public:
  RunDirOldModel(const std::string& dir, bool bf16, const torch::Device& device)
      : dir_(dir), model_(load_run_model(dir)), device_(device) {
    classes_ = data::ClassMap::load(RunPaths{dir}.classes());
    for (auto& p : model_->parameters()) p.requires_grad_(false);
    model_->eval();
    model_->to(device_);
    head_.weight = model_->classifier->weight.detach();
    head_.normalized = model_->classifier->normalized;
    head_.scale = model_->classifier->scale;
    // The folded forward prepacks oneDNN (CPU) weights; another device runs the module.
    if (device_.is_cpu()) {
      infer_ = model_->folded_inference(bf16);  // frozen: the snapshot stays valid
    } else {
      infer_ = [m = model_](const torch::Tensor& x) mutable { return m->forward(x).to(torch::kFloat); };
    }
  }
  torch::Tensor embed(const torch::Tensor& x) override {
    torch::NoGradGuard no_grad;
    return infer_(x);
  }
  torch::Device device() const override { return device_; }
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
  models::EmbeddingModel model_;
  torch::Device device_;
  models::InferenceFn infer_;
};

}  // namespace

std::shared_ptr<models::OldModel> open_old_model(const std::string& path, const std::string& class_map,
                                                 const std::string& classifier_npy, const std::string& precision,
                                                 const std::string& device) {
  DT_CHECK(!path.empty(), "no old model given (old.path)");
  DT_CHECK(fs::exists(path), "old model ", path, " does not exist");
  DT_CHECK(precision == "fp32" || precision == "bf16", "model precision: expected fp32 or bf16, found '", precision,
           "'");
  DT_CHECK(device == "cpu" || device == "cuda", "model device: expected cpu or cuda, found '", device, "'");
  if (fs::is_directory(path)) return std::make_shared<RunDirOldModel>(path, precision == "bf16", torch::Device(device));
  if (fs::path(path).extension() == ".onnx") return models::open_onnx_old_model(path, class_map, classifier_npy);
  return models::open_torchscript_old_model(path, class_map, classifier_npy);
}

}  // namespace dualtune::engine

#include "dualtune/models/old_model.h"

#include <torch/script.h>

#include "dualtune/models/exported_old_model.h"
#include "dualtune/util/error.h"

namespace dualtune::models {
namespace {

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

std::shared_ptr<OldModel> open_torchscript_old_model(const std::string& path, const std::string& class_map,
                                                     const std::string& classifier_npy) {
  return std::make_shared<ScriptOldModel>(path, class_map, classifier_npy);
}

}  // namespace dualtune::models

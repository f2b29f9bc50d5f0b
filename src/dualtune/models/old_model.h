#pragma once
// The deployed ("old") model the new one must stay compatible with. Frozen: eval mode,
// no gradients. Three sources:
//   - a dualtune run directory (checkpoint + classes.json + config.yml): embeddings and
//     classifier Wo come from the run;
//   - a TorchScript file (torch.jit.trace(model, x).save(...)) or an ONNX file (*.onnx,
//     run forward-only by OpenCV DNN) whose forward returns the B × Do embedding, with a
//     class-map JSON and, optionally, Wo as an .npy (Co × Do): exported_old_model.h.
#include <torch/torch.h>

#include <memory>
#include <string>

#include "dualtune/data/class_map.h"
#include "dualtune/losses/compat/head.h"

namespace dualtune::models {

class OldModel {
 public:
  virtual ~OldModel() = default;
  /// Opens `path` (run directory, *.onnx file, else TorchScript file). class_map /
  /// classifier_npy are used for exported models only. Throws dualtune::Error on missing
  /// or mismatching files.
  static std::shared_ptr<OldModel> open(const std::string& path, const std::string& class_map = "",
                                        const std::string& classifier_npy = "");

  /// x: B × C × H × W -> B × Do, computed without gradients in eval mode.
  virtual torch::Tensor embed(const torch::Tensor& x) = 0;
  /// Do (known after open for run dirs; for exported models after the first embed()).
  virtual int64_t dim() const = 0;
  const data::ClassMap& classes() const { return classes_; }
  /// Wo; head().weight is undefined when the old classifier is unknown.
  const losses::compat::ClassHead& head() const { return head_; }
  /// All parameters and buffers (to prove they never change).
  virtual std::vector<torch::Tensor> state() = 0;
  virtual std::string describe() const = 0;

 protected:
  data::ClassMap classes_;
  losses::compat::ClassHead head_;
};

}  // namespace dualtune::models

#pragma once
// The deployed ("old") model the new one must stay compatible with. Frozen: eval mode,
// no gradients. Three sources, opened by engine::open_old_model (engine/open_old_model.h):
//   - a dualtune run directory (checkpoint + classes.json + config.yml): embeddings and
//     classifier Wo come from the run (engine/open_old_model.cc);
//   - a TorchScript file (torch.jit.trace(model, x).save(...)) or an ONNX file (*.onnx,
//     run forward-only by OpenCV DNN) whose forward returns the B × Do embedding, with a
//     class-map JSON and, optionally, Wo as an .npy (Co × Do): exported_old_model.h.
#include <torch/torch.h>

#include <memory>
#include <string>

#include "dualtune/data/class_map.h"
#include "dualtune/models/class_head.h"

namespace dualtune::models {

class OldModel {
 public:
  virtual ~OldModel() = default;
  /// x: B × C × H × W -> B × Do, computed without gradients in eval mode.
  virtual torch::Tensor embed(const torch::Tensor& x) = 0;
  /// Do (known after open for run dirs; for exported models after the first embed()).
  virtual int64_t dim() const = 0;
  const data::ClassMap& classes() const { return classes_; }
  /// Wo; head().weight is undefined when the old classifier is unknown.
  const ClassHead& head() const { return head_; }
  /// All parameters and buffers (to prove they never change).
  virtual std::vector<torch::Tensor> state() = 0;
  virtual std::string describe() const = 0;
  /// Where embed() computes: a run directory opened on a device lives there; exported
  /// (TorchScript / ONNX) models run on the CPU.
  virtual torch::Device device() const { return torch::kCPU; }
  /// embed() of x wherever x is: x is copied to device() and the result back to
  /// x.device() (no copy when they are the same device).
  torch::Tensor embed_on(const torch::Tensor& x) { return embed(x.to(device())).to(x.device()); }

 protected:
  data::ClassMap classes_;
  ClassHead head_;
};

}  // namespace dualtune::models

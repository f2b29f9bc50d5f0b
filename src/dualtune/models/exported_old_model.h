#pragma once
// An old model exported from a training framework: a TorchScript file (libtorch) or an
// ONNX file (OpenCV DNN, forward only). Both follow the same contract: forward maps
// B × C × H × W to the B × Do embedding; the class map (JSON {"classes": [...]}) is
// required, the classifier Wo (.npy, Co × Do, any float dtype npy.h reads) optional.
#include <torch/torch.h>

#include <memory>
#include <string>

#include "dualtune/models/old_model.h"

namespace dualtune::models {

class ExportedOldModel : public OldModel {
 public:
  int64_t dim() const override { return dim_; }

 protected:
  /// kind names the format in errors ("TorchScript", "ONNX"). Reads the class map and
  /// the optional classifier.
  ExportedOldModel(std::string kind, std::string path, const std::string& class_map,
                   const std::string& classifier_npy);
  /// Checks that out (the forward result for an input of `batch` items) is B × D,
  /// records D at the first call (and checks Wo's width against it), returns it as float.
  torch::Tensor checked_embedding(const torch::Tensor& out, int64_t batch);
  std::string classes_summary() const;

  std::string kind_, path_;
  int64_t dim_ = -1;  ///< known after the first embed()
};

/// The ONNX old model (models/onnx_old_model.cc).
std::shared_ptr<OldModel> open_onnx_old_model(const std::string& path, const std::string& class_map,
                                              const std::string& classifier_npy);
/// The TorchScript old model (models/old_model.cc).
std::shared_ptr<OldModel> open_torchscript_old_model(const std::string& path, const std::string& class_map,
                                                     const std::string& classifier_npy);

}  // namespace dualtune::models

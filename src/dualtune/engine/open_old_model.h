#pragma once
// Opens the deployed ("old") model a compatible run trains against, or that extraction
// embeds with: a dualtune run directory (its checkpoint through engine/checkpoint.h), an
// ONNX file (*.onnx) or a TorchScript file (models/old_model.h, exported_old_model.h).
#include <memory>
#include <string>

#include "dualtune/models/old_model.h"

namespace dualtune::engine {

/// Opens `path` (run directory, *.onnx file, else TorchScript file). class_map /
/// classifier_npy are used for exported models only. precision (resolved: fp32 | bf16)
/// is the arithmetic of a run directory's embed(); exported models embed as exported.
/// device (resolved: cpu | cuda, engine/device.h) is where a run directory's model lives;
/// exported models run on the CPU (OldModel::embed_on moves the batch).
/// Throws dualtune::Error on missing or mismatching files.
std::shared_ptr<models::OldModel> open_old_model(const std::string& path, const std::string& class_map = "",
                                                 const std::string& classifier_npy = "",
                                                 const std::string& precision = "fp32",
                                                 const std::string& device = "cpu");

}  // namespace dualtune::engine

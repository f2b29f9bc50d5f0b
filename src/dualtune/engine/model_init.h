#pragma once
// model.init: start a model from pretrained weights before its first training step.
// Sources: a TorchScript file or torch.save state dict (models/state_dict_file.h), in
// torchvision's layout for the resnets, or a dualtune run / export directory.
//
// Name matching. Each source name loses any leading "module." (DataParallel and
// DistributedDataParallel wrap the network in .module), then goes to the model's
// tensor of the same name, else to "backbone.<name>" (torchvision's conv1.weight is the
// model's backbone.conv1.weight; a run's backbone.conv1.weight matches as is). A name
// that matches nothing is "unexpected"; a backbone tensor the source lacks is "missing".
// The head (proj, neck) loads from a source that has it with the same shape, else stays
// new; the classifier loads only from a run or export directory whose classes.json
// lists the training classes in the same order (a file says nothing about which class
// a row is).
//
// model.init_strict (default true) refuses, naming the first few of each: a backbone
// tensor of another shape, a backbone tensor missing (num_batches_tracked excepted: only
// BatchNorm with momentum None reads it), a source tensor with no place in the model
// (torchvision's ImageNet classifier fc.* excepted: the model has its own head). With
// init_strict false the matching subset loads and the rest is reported. Nothing
// matching at all is an error either way.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dualtune/data/class_map.h"
#include "dualtune/models/embedding_model.h"

namespace dualtune::engine {

struct ModelInitOptions {
  std::string path;    ///< "" = no initialisation (random weights)
  bool strict = true;  ///< model.init_strict
};

struct InitReport {
  struct Mismatch {
    std::string name;                    ///< the model's name
    std::vector<int64_t> source, model;  ///< shapes
  };
  struct Fresh {
    std::string name, reason;  ///< a head / classifier tensor left at its initial value, and why
  };
  std::string path, kind;  ///< kind: run directory | dualtune export | TorchScript module | torch.save state dict
  bool strict = true;
  int64_t module_prefix = 0;    ///< source names that lost a leading "module."
  int64_t backbone_prefix = 0;  ///< source names that matched as "backbone.<name>"
  std::vector<std::string> loaded, missing, unexpected;
  std::vector<Mismatch> mismatched;
  std::vector<Fresh> fresh;

  nlohmann::json to_json() const;  ///< init_report.json
  nlohmann::json summary_json() const;  ///< the counts, recorded in meta.json
  std::string summary() const;     ///< one line for the console
};

/// Copies the matching tensors of options.path into model (before any training step).
/// classes: the training classes (for the classifier). Throws dualtune::Error as above.
InitReport initialize_model(const ModelInitOptions& options, models::EmbeddingModelImpl& model,
                            const data::ClassMap& classes);

}  // namespace dualtune::engine

#pragma once
// A run directory holds everything needed to reproduce and reuse a training run:
//   config.yml        the resolved config
//   classes.json      class map of the training set (label <-> name)
//   checkpoint.pt     model + optimizer state + finished epochs (written atomically each epoch)
//   meta.json         architecture, embedding size, classes, dataset fingerprint,
//                     code version, provenance (util/provenance.h), config hash,
//                     epochs done, complete flag
//   train_log.jsonl   one JSON record per logged step and per epoch
//   prototypes/       (compatible runs) prototypes.npy + classes.json actually used
//   init_report.json  (model.init) loaded / missing / unexpected / mismatched / new tensors
// An export (dualtune export, engine/export_run.h) has config.yml, classes.json and
// state_dict.pt (the model's tensors as Python's torch.load reads them) instead of
// checkpoint.pt, and opens wherever a run directory does.
//   backbone.pt       (model.backbone: torchscript) a copy of model.path taken when the run
//                     started: the module the checkpoint's backbone.* tensors belong to, so
//                     the run works after the user's file moves or changes
// A forward-transform run directory has config.yml, meta.json, train_log.jsonl and
// transform.pt instead (engine/transform_run.h).
#include <string>

#include <nlohmann/json.hpp>

namespace dualtune {

struct RunPaths {
  std::string dir;
  std::string config() const { return dir + "/config.yml"; }
  std::string classes() const { return dir + "/classes.json"; }
  std::string checkpoint() const { return dir + "/checkpoint.pt"; }
  /// Exports: the model's state dict (models/state_dict_file.h).
  std::string state_dict() const { return dir + "/state_dict.pt"; }
  std::string meta() const { return dir + "/meta.json"; }
  std::string log() const { return dir + "/train_log.jsonl"; }
  std::string prototypes() const { return dir + "/prototypes"; }
  std::string init_report() const { return dir + "/init_report.json"; }
  std::string backbone_module() const { return dir + "/backbone.pt"; }
  /// Forward-transform runs (engine/transform_run.h): h's weights and spec.
  std::string transform() const { return dir + "/transform.pt"; }
};

/// meta.json of a run, or an empty object if absent. Throws on a corrupt file.
nlohmann::json read_meta(const std::string& run_dir);
/// True when meta.json says the run finished and its config hash equals `hash`.
bool run_is_complete(const std::string& run_dir, const std::string& hash);
/// "<version>+git.<revision>" of this build (util/provenance.h).
std::string code_version();

}  // namespace dualtune

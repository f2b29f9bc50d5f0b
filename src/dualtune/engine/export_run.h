#pragma once
// `dualtune export`: a trained run directory -> what a serving stack outside dualtune
// loads. The export directory holds
//   state_dict.pt   every parameter and buffer under the model's names (backbone.*,
//                   proj.*, neck.*, classifier.weight), as Python's torch.load reads it;
//                   python/dualtune_models.py rebuilds the network around it
//   model.json      the architecture and the input it expects (size, channels,
//                   normalisation), format "dualtune-export" version 1
//   classes.json    the class map of the training set ({"classes": [...]})
//   classifier.npy  the classifier W, float32 C × D (rows in classes.json's order)
//   config.yml      the run's resolved config
//   meta.json       the run's (its config hash names the model in a gallery)
//   README.md       how to load it in Python
// For a torchscript backbone (model.backbone: torchscript) also
//   model.pt        the trained network, backbone and head, as one TorchScript module:
//                   torch.jit.load("model.pt")(x) is `dualtune extract`'s embedding
//   backbone.pt     the run's copy of the user's module (the architecture state_dict.pt
//                   fills when dualtune opens the export)
// The directory opens wherever a run directory does (engine::load_run_model reads
// state_dict.pt when there is no checkpoint.pt): extract --model, old.path of the next
// upgrade, model.init, serve, gallery add. It is written to a temporary directory beside
// DIR and renamed to DIR only when complete.
#include <string>

#include <nlohmann/json.hpp>

namespace dualtune::engine {

/// Exports run_dir to out_dir (which must not exist, or be an empty directory). Returns
/// model.json's content. Throws dualtune::Error when run_dir is not a finished-enough run
/// (no checkpoint) or holds a backbone this build cannot export.
nlohmann::json export_run(const std::string& run_dir, const std::string& out_dir);

}  // namespace dualtune::engine

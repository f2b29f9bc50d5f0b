#pragma once
// checkpoint.pt: one torch archive {"model": module state, "optimizer": optimizer
// state, "epoch": finished epochs}, written to a temporary file, fsynced and renamed
// (util/atomic_file.h), so the file on disk is always a complete checkpoint of the
// last finished epoch.
#include <torch/torch.h>

#include <string>

#include "dualtune/models/embedding_model.h"

namespace dualtune::engine {

/// Writes archive to path atomically (util/atomic_file.h). A torch error becomes
/// dualtune::Error "cannot write <what><path>: ...".
void save_archive_atomic(torch::serialize::OutputArchive& archive, const std::string& path, const std::string& what);

void save_checkpoint(const std::string& path, models::EmbeddingModel& model, torch::optim::Optimizer* optimizer,
                     int64_t epochs_done);
/// Loads the model (and the optimizer when given) and returns the finished epochs.
/// Throws dualtune::Error naming the file when it is missing, corrupt or does not match
/// the model's architecture.
int64_t load_checkpoint(const std::string& path, models::EmbeddingModel& model, torch::optim::Optimizer* optimizer);

/// Copies every tensor of the model from `tensors` (exact names and shapes, as
/// export writes them). Throws dualtune::Error naming `source` and the first
/// missing, extra or mismatched names.
void load_state_dict(models::EmbeddingModel& model, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                     const std::string& source);
/// The architecture of a run directory: model_spec() of its config.yml with the size of
/// its classes.json; for a torchscript backbone the module is the run's own copy
/// (RunPaths::backbone_module), not the config's model.path, which may have moved.
models::ModelSpec run_model_spec(const std::string& run_dir);

/// The model of a finished run directory, in eval mode (architecture from its config.yml,
/// classes from classes.json, weights from checkpoint.pt, or from state_dict.pt in an
/// export directory).
models::EmbeddingModel load_run_model(const std::string& run_dir);

}  // namespace dualtune::engine

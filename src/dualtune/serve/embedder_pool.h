#pragma once
// The models that turn images into query vectors, behind the gallery's torch-free
// ImageEmbedder interface: the service never sees libtorch, the CLI hands it a factory
// (engine's embedder of a run directory / TorchScript file), tests hand it their own.
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dualtune/gallery/gallery.h"
#include "dualtune/gallery/image_embedder.h"

namespace dualtune::serve {

/// Makes the embedder of a registered model (m.path: run directory or TorchScript file).
/// Throws dualtune::Error when the model cannot be loaded.
using EmbedderFactory = std::function<std::unique_ptr<gallery::ImageEmbedder>(const gallery::ModelInfo& m)>;

/// One embedder per model, made on first use and checked against the gallery's record
/// (Gallery::check_model). ImageEmbedder allows one embed() at a time per object, so
/// calls for one model queue on its lock; different models run side by side.
class Embedders {
 public:
  Embedders(gallery::Gallery& gallery, EmbedderFactory factory);
  /// Vectors of the refs' images by model m (refs.size() × m.dim, row-major) and one error
  /// per image ("" = embedded). 409 HttpError when m has no model file recorded, 500 when
  /// it cannot be loaded or differs from the recorded one.
  std::vector<float> embed(const gallery::ModelInfo& m, const std::vector<gallery::ImageRef>& refs,
                           std::vector<std::string>& errors);
  /// Calls fn with the embedders of `models`, each locked for the duration (Gallery::add_images).
  void with(const std::vector<gallery::ModelInfo>& models,
            const std::function<void(const std::vector<std::pair<std::string, gallery::ImageEmbedder*>>&)>& fn);

 private:
  struct Slot {
    std::mutex mu;
    std::unique_ptr<gallery::ImageEmbedder> embedder;
  };
  /// The model's slot, its embedder made if needed; call with slot->mu held.
  Slot& slot(const gallery::ModelInfo& m);
  gallery::ImageEmbedder& ready(Slot& s, const gallery::ModelInfo& m);
  gallery::Gallery& gallery_;
  EmbedderFactory factory_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Slot>> slots_;  ///< by model name (also the lock order)
};

}  // namespace dualtune::serve

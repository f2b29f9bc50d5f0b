#pragma once
// The torch-free seam between the gallery and a model: the gallery decides which items
// to embed and in which batches; an ImageEmbedder turns their images into vectors.
// engine/torch_image_embedder.h implements it with a dualtune run directory or TorchScript
// model (engine::embedder_for) and the dataset readers (data::open_dataset); tests
// implement it with deterministic functions of the key.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace dualtune::gallery {

/// Where an item's image is: its key and the JSON spec of its source (Store sources):
///   {"format":"idx"|"image_folder"|"market1501","root":...,"split":...,"classes":...}
///     the image is the dataset item whose path (data::Dataset::path) equals the key;
///   {"format":"files"}  the key is an image file path.
struct ImageRef {
  int64_t item_id = 0;
  std::string key;
  std::string source;  ///< "" = no image known (the item cannot be embedded)
};

/// One embedded batch: vectors of every item (n × dim, row i of a failed item is
/// unspecified) and one error per item ("" = embedded).
struct EmbeddedBatch {
  int64_t index = 0;                ///< batch index in the caller's list
  std::vector<int64_t> item_ids;    ///< n
  std::vector<float> vectors;       ///< n × dim
  std::vector<std::string> errors;  ///< n; e.g. "missing image", "corrupt image: ..."
};

class ImageEmbedder {
 public:
  virtual ~ImageEmbedder() = default;
  /// Embedding size of the model.
  virtual int64_t dim() const = 0;
  /// Fingerprint of the model (model_fingerprint), compared with what the gallery recorded.
  virtual std::string fingerprint() const = 0;
  /// Embeds the batches in order (an implementation may prepare batch b+1 while the model
  /// runs on batch b) and calls on_batch once per batch, in order, from the calling
  /// thread; returns early, without embedding further batches, when on_batch returns
  /// false. A missing or undecodable image is reported in errors, never thrown; other
  /// failures (the model itself) throw dualtune::Error.
  /// Threading: one embed() at a time per object.
  virtual void embed(const std::vector<std::vector<ImageRef>>& batches,
                     const std::function<bool(EmbeddedBatch&)>& on_batch) = 0;
};

/// Fingerprint of a model file: a run directory's meta.json config_hash ("config:<hash>"),
/// else FNV-1a 64 of the file's bytes ("file:<hex>"). Throws when path does not exist.
std::string model_fingerprint(const std::string& path);

}  // namespace dualtune::gallery

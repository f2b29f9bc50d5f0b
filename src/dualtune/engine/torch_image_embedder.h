#pragma once
// gallery::ImageEmbedder of a dualtune run directory or TorchScript model: images come
// from the item's source (data::open_dataset for dataset sources, OpenCV for plain
// files), the test-time transform of the model's run, the forward pass of
// engine::embedder_for. Batch b+1 is decoded on loader threads while the model runs on
// batch b, as `dualtune extract` overlaps them. A missing or undecodable image is
// reported for its item; the rest of the batch is embedded.
#include <memory>
#include <string>

#include "dualtune/data/transforms.h"
#include "dualtune/gallery/image_embedder.h"

namespace dualtune::engine {

struct GalleryEmbedderOptions {
  std::string model_path;       ///< run directory or TorchScript file
  std::string class_map;        ///< TorchScript: class map JSON (unused for embedding)
  data::TransformOptions transform;  ///< test-time transform (cli: resolve_data_options)
  int workers = 2;              ///< decoding threads per batch
  std::string precision = "fp32";  ///< resolved: fp32 | bf16 (engine/precision.h)
  std::string device = "cpu";      ///< resolved: cpu | cuda (engine/device.h)
};

/// Opens the model (one forward pass on a blank image to learn its embedding size).
std::unique_ptr<gallery::ImageEmbedder> make_gallery_embedder(const GalleryEmbedderOptions& options);

}  // namespace dualtune::engine

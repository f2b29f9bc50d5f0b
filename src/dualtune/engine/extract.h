#pragma once
// Batched inference over a dataset: embeddings of every item in dataset order, under
// NoGradGuard, with the test-time transform, decoding on loader threads.
#include <torch/torch.h>

#include <functional>
#include <memory>

#include "dualtune/data/dataset.h"
#include "dualtune/data/transforms.h"
#include "dualtune/features/feature_set.h"

namespace dualtune::engine {

using Embedder = std::function<torch::Tensor(const torch::Tensor&)>;

/// Runs `embed` over every item of `dataset` (in order) and returns the FeatureSet
/// (features n × D, labels, cams, paths, class names).
features::FeatureSet extract_features(const Embedder& embed, std::shared_ptr<const data::Dataset> dataset,
                                      const data::TransformOptions& transform, int64_t batch_size, int workers);

/// Embedder of a model given as a run directory or TorchScript file (engine::open_old_model),
/// in `precision` (resolved: fp32 | bf16; see engine/precision.h), on `device` (resolved:
/// cpu | cuda; engine/device.h). The embedder takes and returns tensors on x's device.
Embedder embedder_for(const std::string& model_path, const std::string& class_map = "",
                      const std::string& precision = "fp32", const std::string& device = "cpu");

}  // namespace dualtune::engine

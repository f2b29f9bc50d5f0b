#include "dualtune/models/embedding_model.h"

namespace nn = torch::nn;

namespace dualtune::models {

EmbeddingModelImpl::EmbeddingModelImpl(const ModelSpec& spec_) : spec(spec_) {
  backbone = register_module("backbone", make_backbone(spec.backbone, spec.in_channels));
  const int64_t width = backbone->out_channels();
  dim_ = spec.embedding_dim > 0 ? spec.embedding_dim : width;
  if (dim_ != width) proj = register_module("proj", nn::Linear(width, dim_));
  neck = register_module("neck", nn::BatchNorm1d(dim_));
  // BNNeck: the shift is frozen at zero so the embedding stays centred for cosine retrieval.
  neck->bias.requires_grad_(false);
  const bool normalized = spec.classifier != "softmax";
  classifier = register_module("classifier", Classifier(dim_, spec.num_classes, normalized, spec.scale));
}

torch::Tensor EmbeddingModelImpl::forward(torch::Tensor x) {
  x = backbone->forward(x);
  x = x.mean({2, 3});
  if (proj) x = proj(x);
  return neck(x);
}

}  // namespace dualtune::models

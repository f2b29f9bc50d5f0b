#pragma once
// EmbeddingModel = backbone -> global average pool -> optional linear projection to
// the embedding size -> BatchNorm1d neck (bias frozen at 0) -> e (the retrieval
// embedding), plus the task classifier over the training classes.
#include <torch/torch.h>

#include <string>

#include "dualtune/models/backbone.h"
#include "dualtune/models/classifier.h"

namespace dualtune::models {

struct ModelSpec {
  std::string backbone = "convnet-s";
  int64_t in_channels = 1;
  int64_t embedding_dim = 128;  ///< 0 = backbone width, no projection
  int64_t num_classes = 10;
  std::string classifier = "softmax";  ///< softmax (bias-free linear) | cosface | arcface (normalised)
  double scale = 30.0;                 ///< s of the normalised classifier
};

struct EmbeddingModelImpl : torch::nn::Module {
  explicit EmbeddingModelImpl(const ModelSpec& spec);
  /// x: B × C × H × W -> e: B × D
  torch::Tensor forward(torch::Tensor x);
  int64_t embedding_dim() const { return dim_; }

  ModelSpec spec;
  std::shared_ptr<BackboneImpl> backbone;
  torch::nn::Linear proj{nullptr};
  torch::nn::BatchNorm1d neck{nullptr};
  Classifier classifier{nullptr};

 private:
  int64_t dim_;
};
TORCH_MODULE(EmbeddingModel);

}  // namespace dualtune::models

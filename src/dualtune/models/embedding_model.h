#pragma once
// EmbeddingModel = backbone -> global average pool (of a B × F × h × w map; a backbone
// that returns B × F features, e.g. a TorchScript one, is not pooled) -> optional linear projection to
// the embedding size -> BatchNorm1d neck (bias frozen at 0) -> e (the retrieval
// embedding), plus the task classifier over the training classes. Convolution weights
// are stored channels-last (to_channels_last below); inputs may be in either layout.
#include <torch/torch.h>

#include <string>

#include "dualtune/models/backbone.h"
#include "dualtune/models/classifier.h"

namespace dualtune::models {

struct ModelSpec {
  std::string backbone = "convnet-s";  ///< convnet-s | convnet-m | resnet18 | resnet50 | torchscript
  std::string path;                    ///< torchscript: the module file (torchscript_backbone.h)
  int64_t in_channels = 1;
  int64_t height = 28, width = 28;     ///< torchscript: the probe batch's image size
  int64_t embedding_dim = 128;  ///< 0 = backbone width, no projection
  int64_t num_classes = 10;
  std::string classifier = "softmax";  ///< softmax (bias-free linear) | cosface | arcface (normalised)
  double scale = 30.0;                 ///< s of the normalised classifier
};

struct EmbeddingModelImpl : torch::nn::Module {
  explicit EmbeddingModelImpl(const ModelSpec& spec);
  /// x: B × C × H × W -> e: B × D
  torch::Tensor forward(torch::Tensor x);
  /// forward() in eval mode for inference under NoGradGuard, with every BatchNorm
  /// folded into the preceding convolution / projection (BackboneImpl::folded_inference).
  /// A snapshot of the current weights; forward() itself in eval mode when the backbone
  /// has no folded path. bf16: the backbone's folded path in bfloat16 (see
  /// BackboneImpl::folded_inference), or forward() under bf16 autocast without one; the
  /// embedding is float32 either way.
  InferenceFn folded_inference(bool bf16 = false);
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

/// Stores every 4-D parameter and buffer of `module` channels-last (NHWC in memory,
/// same values and shapes): convolutions then run on oneDNN's NHWC kernels without
/// reordering activations to and from its blocked layout, and their outputs, hence
/// BatchNorm / ReLU / pooling, stay channels-last. Parameters keep their identity
/// (optimizer state and hooks stay attached).
void to_channels_last(torch::nn::Module& module);

}  // namespace dualtune::models

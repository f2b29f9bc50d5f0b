#pragma once
// Backbones: image batch (B × C × H × W) -> feature map (B × out_channels × h × w).
//   convnet-s / convnet-m: three conv3x3-BN-ReLU blocks of 32/64/128 (resp. 64/128/256)
//     channels, 2×2 max-pool after the first two (28×28 -> 7×7). The pool runs before
//     the ReLU: max and ReLU commute (ReLU is monotone), values and gradients are those
//     of conv-BN-ReLU-pool, and the ReLU touches a quarter of the elements.
//   resnet18 / resnet50: torchvision layout and parameter names (conv1, bn1, layer1..4,
//     downsample.0/.1), so state dicts converted from torchvision load by name.
#include <torch/torch.h>

#include <functional>
#include <string>

namespace dualtune::models {

/// An inference-only forward: x (B × C × H × W) -> feature map.
using InferenceFn = std::function<torch::Tensor(const torch::Tensor&)>;

struct BackboneImpl : torch::nn::Module {
  virtual torch::Tensor forward(torch::Tensor x) = 0;
  virtual int64_t out_channels() const = 0;
  /// forward() in eval mode with BatchNorm folded into the convolutions (w·γ/σ and
  /// β − μ·γ/σ, σ = √(running_var + ε)), weights prepacked once in oneDNN's blocked
  /// layout and activations kept in it, for use under NoGradGuard. A snapshot: later
  /// changes of the weights are not seen. Same values up to float rounding. Empty when
  /// the backbone has no such path or oneDNN cannot run it here (then use forward()).
  /// bf16: weights and activations in bfloat16 (oneDNN's bf16 kernels; fast only on CPUs
  /// with avx512_bf16 or AMX), the feature map returned in float32.
  virtual InferenceFn folded_inference(bool bf16) {
    (void)bf16;
    return {};
  }
};

/// Builds the backbone named in the config (convnet-s | convnet-m | resnet18 | resnet50).
/// in_channels: image channels. Throws dualtune::Error on an unknown name.
std::shared_ptr<BackboneImpl> make_backbone(const std::string& name, int64_t in_channels);

}  // namespace dualtune::models

#include "dualtune/models/embedding_model.h"

#include "dualtune/models/forward_precision.h"
#include "dualtune/models/fused_ops.h"
#include "dualtune/models/torchscript_backbone.h"

namespace nn = torch::nn;

namespace dualtune::models {

EmbeddingModelImpl::EmbeddingModelImpl(const ModelSpec& spec_) : spec(spec_) {
  const ProbeShape probe{spec.in_channels, spec.height, spec.width};
  backbone = register_module("backbone", spec.backbone == "torchscript" ? make_torchscript_backbone(spec.path, probe)
                                                                         : make_backbone(spec.backbone, spec.in_channels));
  const int64_t width = backbone->out_channels();
  dim_ = spec.embedding_dim > 0 ? spec.embedding_dim : width;
  if (dim_ != width) proj = register_module("proj", nn::Linear(width, dim_));
  neck = register_module("neck", nn::BatchNorm1d(dim_));
  // BNNeck: the shift is frozen at zero so the embedding stays centred for cosine retrieval.
  neck->bias.requires_grad_(false);
  const bool normalized = spec.classifier != "softmax";
  classifier = register_module("classifier", Classifier(dim_, spec.num_classes, normalized, spec.scale));
  to_channels_last(*this);
}

InferenceFn EmbeddingModelImpl::folded_inference(bool bf16) {
  torch::NoGradGuard no_grad;
  auto backbone_fn = backbone->folded_inference(bf16);
  if (!backbone_fn) {
    eval();
    return [self = shared_from_this(), bf16](const torch::Tensor& x) {
      ForwardPrecision cast(bf16 ? "bf16" : "fp32");
      return std::static_pointer_cast<EmbeddingModelImpl>(self)->forward(x).to(torch::kFloat);
    };
  }
  // neck(proj(f)) = (W f + b − μ)·s + β with s = γ/σ: one affine map W' f + b'.
  const auto s = neck->weight / torch::sqrt(neck->running_var + neck->options.eps());
  torch::Tensor w, b;
  if (proj) {
    w = (proj->weight * s.view({-1, 1})).contiguous();
    b = (proj->bias - neck->running_mean) * s + neck->bias;
  } else {
    w = torch::diag(s);
    b = neck->bias - neck->running_mean * s;
  }
  return [backbone_fn, w, b](const torch::Tensor& x) { return torch::addmm(b, backbone_fn(x).mean({2, 3}), w.t()); };
}

torch::Tensor EmbeddingModelImpl::forward(torch::Tensor x) {
  x = backbone->forward(x);
  if (x.dim() == 4) x = mean_hw(x);  // x.mean({2, 3}), backward laid out like x (fused_ops.h)
  if (proj) x = proj(x);
  return neck(x);
}

void to_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& t : module.parameters())
    if (t.dim() == 4) t.set_data(t.data().contiguous(torch::MemoryFormat::ChannelsLast));
  for (auto& t : module.buffers())
    if (t.dim() == 4) t.set_data(t.data().contiguous(torch::MemoryFormat::ChannelsLast));
}

}  // namespace dualtune::models

#include "dualtune/models/backbone.h"

#include "dualtune/models/fused_ops.h"
#include "dualtune/util/error.h"

namespace nn = torch::nn;

namespace dualtune::models {
namespace {

nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding(pad).bias(false));
}

struct ConvNetImpl : BackboneImpl {
  ConvNetImpl(int64_t in_channels, std::array<int64_t, 3> widths) : width_(widths[2]) {
    int64_t in = in_channels;
    for (int i = 0; i < 3; ++i) {
      nn::Sequential block(conv(in, widths[i], 3, 1, 1), nn::BatchNorm2d(widths[i]));
      if (i < 2) block->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2)));
      block->push_back(nn::ReLU(nn::ReLUOptions(true)));
      blocks_.push_back(register_module("block" + std::to_string(i + 1), block));
      in = widths[i];
    }
  }
  torch::Tensor forward(torch::Tensor x) override {
    for (auto& b : blocks_) {
      if (b->size() == 4) {  // conv, bn, pool, relu: the pool and relu in one pass (fused_ops.h)
        x = b->ptr(1)->as<nn::BatchNorm2d>()->forward(b->ptr(0)->as<nn::Conv2d>()->forward(x));
        x = max_pool2x2_relu(x);
      } else {
        x = b->forward(x);
      }
    }
    return x;
  }
  int64_t out_channels() const override { return width_; }

  InferenceFn folded_inference(bool bf16) override {
    torch::NoGradGuard no_grad;
    const auto dtype = bf16 ? torch::kBFloat16 : torch::kFloat;
    struct Folded {
      torch::Tensor weight, bias;  // weight prepacked (mkldnn), bias dense
      bool pool;
    };
    // oneDNN's bf16 convolution needs avx512bw/vl/dq (libtorch refuses it elsewhere), and a
    // libtorch built without oneDNN has none of these ops: where preparing the layers or
    // one probe batch fails, there is no folded path (the caller runs forward()).
    try {
      std::vector<Folded> layers;
      for (size_t i = 0; i < blocks_.size(); ++i) {
        const auto& c = blocks_[i]->ptr(0)->as<nn::Conv2d>();
        const auto& bn = blocks_[i]->ptr(1)->as<nn::BatchNorm2d>();
        const auto scale = bn->weight / torch::sqrt(bn->running_var + bn->options.eps());
        const auto w = (c->weight * scale.view({-1, 1, 1, 1})).contiguous();
        layers.push_back({at::mkldnn_reorder_conv2d_weight(w.to_mkldnn(dtype), {1, 1}, {1, 1}, {1, 1}, 1),
                          (bn->bias - bn->running_mean * scale).contiguous(), i + 1 < blocks_.size()});
      }
      InferenceFn fn = [layers, dtype](const torch::Tensor& input) {
        auto x = input.contiguous().to_mkldnn(dtype);
        for (const auto& l : layers) {
          x = at::mkldnn_convolution(x, l.weight, l.bias, {1, 1}, {1, 1}, {1, 1}, 1);
          if (l.pool) x = at::max_pool2d(x, {2, 2});
          x = at::relu_(x);
        }
        return x.to_dense().to(torch::kFloat);
      };
      const int64_t in = blocks_[0]->ptr(0)->as<nn::Conv2d>()->weight.size(1);
      fn(torch::zeros({1, in, 4, 4}));
      return fn;
    } catch (const c10::Error&) {
      return {};
    }
  }

  std::vector<nn::Sequential> blocks_;
  int64_t width_;
};

// torchvision.models.resnet.BasicBlock
struct BasicBlockImpl : nn::Module {
  static constexpr int64_t expansion = 1;
  BasicBlockImpl(int64_t in, int64_t planes, int64_t stride) {
    conv1 = register_module("conv1", conv(in, planes, 3, stride, 1));
    bn1 = register_module("bn1", nn::BatchNorm2d(planes));
    conv2 = register_module("conv2", conv(planes, planes, 3, 1, 1));
    bn2 = register_module("bn2", nn::BatchNorm2d(planes));
    if (stride != 1 || in != planes) {
      downsample = register_module("downsample", nn::Sequential(conv(in, planes, 1, stride, 0), nn::BatchNorm2d(planes)));
    }
  }
  torch::Tensor forward(torch::Tensor x) {
    auto out = torch::relu(bn1(conv1(x)));
    out = bn2(conv2(out));
    auto identity = downsample ? downsample->forward(x) : x;
    return torch::relu(out + identity);
  }
  nn::Conv2d conv1{nullptr}, conv2{nullptr};
  nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  nn::Sequential downsample{nullptr};
};
TORCH_MODULE(BasicBlock);

// torchvision.models.resnet.Bottleneck (stride on the 3x3 conv, "ResNet v1.5")
struct BottleneckImpl : nn::Module {
  static constexpr int64_t expansion = 4;
  BottleneckImpl(int64_t in, int64_t planes, int64_t stride) {
    conv1 = register_module("conv1", conv(in, planes, 1, 1, 0));
    bn1 = register_module("bn1", nn::BatchNorm2d(planes));
    conv2 = register_module("conv2", conv(planes, planes, 3, stride, 1));
    bn2 = register_module("bn2", nn::BatchNorm2d(planes));
    conv3 = register_module("conv3", conv(planes, planes * expansion, 1, 1, 0));
    bn3 = register_module("bn3", nn::BatchNorm2d(planes * expansion));
    if (stride != 1 || in != planes * expansion) {
      downsample = register_module(
          "downsample", nn::Sequential(conv(in, planes * expansion, 1, stride, 0), nn::BatchNorm2d(planes * expansion)));
    }
  }
  torch::Tensor forward(torch::Tensor x) {
    auto out = torch::relu(bn1(conv1(x)));
    out = torch::relu(bn2(conv2(out)));
    out = bn3(conv3(out));
    auto identity = downsample ? downsample->forward(x) : x;
    return torch::relu(out + identity);
  }
  nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  nn::Sequential downsample{nullptr};
};
TORCH_MODULE(Bottleneck);

template <class Block>
struct ResNetImpl : BackboneImpl {
  ResNetImpl(int64_t in_channels, std::array<int64_t, 4> layers) {
    conv1 = register_module("conv1", conv(in_channels, 64, 7, 2, 3));
    bn1 = register_module("bn1", nn::BatchNorm2d(64));
    const std::array<int64_t, 4> planes{64, 128, 256, 512};
    for (int i = 0; i < 4; ++i) {
      nn::Sequential layer;
      for (int64_t b = 0; b < layers[i]; ++b) {
        layer->push_back(Block(in_, planes[i], (b == 0 && i > 0) ? 2 : 1));
        in_ = planes[i] * Block::Impl::expansion;
      }
      this->layers.push_back(register_module("layer" + std::to_string(i + 1), layer));
    }
    for (auto& m : this->modules(false)) {
      if (auto* c = m->template as<nn::Conv2d>()) {
        nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
      }
    }
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = torch::relu(bn1(conv1(x)));
    x = torch::max_pool2d(x, 3, 2, 1);
    for (auto& l : layers) x = l->forward(x);
    return x;
  }
  int64_t out_channels() const override { return in_; }

  nn::Conv2d conv1{nullptr};
  nn::BatchNorm2d bn1{nullptr};
  std::vector<nn::Sequential> layers;
  int64_t in_ = 64;
};

}  // namespace

std::shared_ptr<BackboneImpl> make_backbone(const std::string& name, int64_t in_channels) {
  if (name == "convnet-s") return std::make_shared<ConvNetImpl>(in_channels, std::array<int64_t, 3>{32, 64, 128});
  if (name == "convnet-m") return std::make_shared<ConvNetImpl>(in_channels, std::array<int64_t, 3>{64, 128, 256});
  if (name == "resnet18") return std::make_shared<ResNetImpl<BasicBlock>>(in_channels, std::array<int64_t, 4>{2, 2, 2, 2});
  if (name == "resnet50") return std::make_shared<ResNetImpl<Bottleneck>>(in_channels, std::array<int64_t, 4>{3, 4, 6, 3});
  DT_THROW("unknown backbone '", name, "': expected convnet-s, convnet-m, resnet18 or resnet50");
}

}  // namespace dualtune::models

// Backbone shapes and torchvision parameter layout; checkpoint round trip.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>

#include "dualtune/engine/checkpoint.h"
#include "dualtune/models/embedding_model.h"
#include "tiny_data.h"

using namespace dualtune;

namespace {
int64_t count_params(torch::nn::Module& m) {
  int64_t n = 0;
  for (auto& p : m.parameters()) n += p.numel();
  return n;
}
}  // namespace

TEST(Backbone, ConvNetOutputShapes) {
  auto s = models::make_backbone("convnet-s", 1);
  auto m = models::make_backbone("convnet-m", 1);
  const auto x = torch::randn({2, 1, 28, 28});
  EXPECT_EQ(s->forward(x).sizes(), (std::vector<int64_t>{2, 128, 7, 7}));
  EXPECT_EQ(m->forward(x).sizes(), (std::vector<int64_t>{2, 256, 7, 7}));
}

TEST(Backbone, ResNetMatchesTorchvisionLayout) {
  torch::NoGradGuard g;
  auto r18 = models::make_backbone("resnet18", 3);
  auto r50 = models::make_backbone("resnet50", 3);
  r18->eval();
  r50->eval();
  const auto x = torch::randn({1, 3, 64, 64});
  EXPECT_EQ(r18->forward(x).sizes(), (std::vector<int64_t>{1, 512, 2, 2}));
  EXPECT_EQ(r50->forward(x).sizes(), (std::vector<int64_t>{1, 2048, 2, 2}));
  // torchvision resnet18 has 11,689,512 parameters, of which fc holds 512*1000+1000:
  EXPECT_EQ(count_params(*r18), 11689512 - 513000);
  // resnet50: 25,557,032 with fc 2048*1000+1000.
  EXPECT_EQ(count_params(*r50), 25557032 - 2049000);
  const auto names = r50->named_parameters();
  for (const char* key : {"conv1.weight", "bn1.weight", "layer1.0.conv3.weight", "layer1.0.downsample.0.weight",
                          "layer4.2.bn3.bias"})
    EXPECT_TRUE(names.contains(key)) << key;
  EXPECT_TRUE(r18->named_buffers().contains("layer2.0.downsample.1.running_mean"));
}

TEST(EmbeddingModel, HeadProjectsAndFreezesNeckBias) {
  models::ModelSpec spec;
  spec.backbone = "convnet-s";
  spec.embedding_dim = 64;
  spec.num_classes = 7;
  models::EmbeddingModel model(spec);
  const auto e = model->forward(torch::randn({4, 1, 28, 28}));
  EXPECT_EQ(e.sizes(), (std::vector<int64_t>{4, 64}));
  EXPECT_EQ(model->classifier->forward(e).sizes(), (std::vector<int64_t>{4, 7}));
  EXPECT_FALSE(model->neck->bias.requires_grad());
  spec.embedding_dim = 0;  // backbone width, no projection
  models::EmbeddingModel plain(spec);
  EXPECT_FALSE(plain->proj);
  EXPECT_EQ(plain->embedding_dim(), 128);
}

TEST(Checkpoint, SaveLoadGivesIdenticalOutputs) {
  const auto dir = testdata::temp_dir("ckpt");
  models::ModelSpec spec;
  spec.num_classes = 3;
  models::EmbeddingModel a(spec), b(spec);
  // Move BN statistics away from their initial values so buffers are checked too.
  a->train();
  for (int i = 0; i < 3; ++i) a->forward(torch::randn({8, 1, 28, 28}) * 3 + 1);
  a->eval();
  torch::optim::Adam opt(a->parameters(), 1e-3);
  engine::save_checkpoint(dir + "/c.pt", a, &opt, 5);
  EXPECT_EQ(engine::load_checkpoint(dir + "/c.pt", b, nullptr), 5);
  b->eval();
  torch::NoGradGuard g;
  const auto x = torch::randn({3, 1, 28, 28});
  EXPECT_TRUE(torch::equal(a->forward(x), b->forward(x)));
  // No temporary file is left behind.
  int files = 0;
  for (auto& f : std::filesystem::directory_iterator(dir)) files += f.is_regular_file();
  EXPECT_EQ(files, 1);
  // A model of another shape is refused with a message naming the file.
  spec.embedding_dim = 32;
  models::EmbeddingModel c(spec);
  try {
    engine::load_checkpoint(dir + "/c.pt", c, nullptr);
    FAIL() << "mismatching checkpoint accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("c.pt"), std::string::npos) << e.what();
  }
}

namespace {

/// An embedding model whose BatchNorm statistics moved off their initial values (three
/// training-mode forwards of shifted, scaled noise); 3 input channels for resnet18, else 1.
models::EmbeddingModel with_batchnorm_statistics(const std::string& backbone, int64_t dim) {
  models::ModelSpec spec;
  spec.backbone = backbone;
  spec.embedding_dim = dim;
  spec.in_channels = backbone == "resnet18" ? 3 : 1;
  models::EmbeddingModel model(spec);
  model->train();
  for (int i = 0; i < 3; ++i) model->forward(torch::randn({16, spec.in_channels, 28, 28}) * 2 + 0.5);
  return model;
}

}  // namespace

// The folded inference path computes forward() in eval mode: BN folded into the convs and
// the projection, prepacked weights, pool before ReLU. Checked with BN statistics and
// affine parameters far from their initial values, with and without a projection; a
// backbone without a folded path (resnet18) falls back to forward().
TEST(EmbeddingModel, FoldedInferenceEqualsEvalForward) {
  torch::manual_seed(4);
  for (const auto& [backbone, dim] : std::vector<std::pair<std::string, int64_t>>{
           {"convnet-s", 64}, {"convnet-m", 128}, {"convnet-s", 0}, {"resnet18", 32}}) {
    auto model = with_batchnorm_statistics(backbone, dim);
    const auto& spec = model->spec;
    {
      torch::NoGradGuard g;
      for (auto& kv : model->named_parameters())
        if (kv.key().find(".1.") != std::string::npos || kv.key().find("neck") != std::string::npos)
          kv.value().uniform_(0.5, 1.5);  // BN γ and β away from 1 and 0
    }
    model->eval();
    torch::NoGradGuard g;
    const auto x = torch::randn({32, spec.in_channels, 28, 28});
    const auto want = model->forward(x);
    const auto fn = model->folded_inference();
    const auto got = fn(x);
    ASSERT_EQ(got.sizes(), want.sizes()) << backbone;
    const double rel = ((got - want).abs().max() / want.abs().max()).item<double>();
    EXPECT_LT(rel, 1e-5) << backbone << " D=" << dim;
    EXPECT_GT(want.abs().max().item<double>(), 0.1);
  }
}

// bf16 inference (oneDNN's bf16 convolutions for the convnets, autocast for resnet18):
// every embedding within cosine 0.999 of the fp32 one (bf16 keeps 8 bits of mantissa,
// ~0.4 % per rounding); measured here 0.9999+. The retrieval metrics of the demo's models
// are compared in docs/RESULTS.md.
TEST(EmbeddingModel, Bf16InferenceIsWithinToleranceOfFp32) {
  torch::manual_seed(6);
  for (const auto& [backbone, dim] : std::vector<std::pair<std::string, int64_t>>{
           {"convnet-s", 64}, {"convnet-m", 128}, {"resnet18", 32}}) {
    auto model = with_batchnorm_statistics(backbone, dim);
    const auto& spec = model->spec;
    model->eval();
    torch::NoGradGuard g;
    const auto x = torch::randn({32, spec.in_channels, 28, 28});
    const auto fp32 = model->folded_inference(false)(x);
    const auto bf16 = model->folded_inference(true)(x);
    ASSERT_EQ(bf16.scalar_type(), torch::kFloat) << backbone;
    ASSERT_EQ(bf16.sizes(), fp32.sizes()) << backbone;
    const auto cos = torch::cosine_similarity(bf16, fp32, 1);
    EXPECT_GT(cos.min().item<double>(), 0.999) << backbone;
    // Not the fp32 result by accident: bf16 rounding shows.
    EXPECT_GT((bf16 - fp32).abs().max().item<double>(), 0.0) << backbone;
    std::printf("%s: min cosine bf16 vs fp32 %.6f, max |diff| / max |e| %.2e\n", backbone.c_str(),
                cos.min().item<double>(), ((bf16 - fp32).abs().max() / fp32.abs().max()).item<double>());
  }
}

// Conv weights are stored channels-last; the values, the parameters' identity (what the
// optimizer holds) and the model's outputs are those of the default layout.
TEST(EmbeddingModel, ChannelsLastWeightsKeepValuesIdentityAndOutputs) {
  torch::manual_seed(5);
  models::ModelSpec spec;
  spec.backbone = "convnet-s";
  spec.embedding_dim = 32;
  models::EmbeddingModel model(spec);
  int convs = 0;
  for (auto& p : model->parameters())
    if (p.dim() == 4) {
      ++convs;
      EXPECT_TRUE(p.is_contiguous(torch::MemoryFormat::ChannelsLast));
      if (p.size(1) > 1) EXPECT_FALSE(p.is_contiguous());  // one input channel: both layouts coincide
    }
  EXPECT_EQ(convs, 3);
  // A model holding `model`'s weights in the default layout.
  auto default_layout_copy = [&] {
    models::EmbeddingModel copy(spec);
    torch::NoGradGuard g;
    auto src = model->parameters(), dst = copy->parameters();
    for (size_t i = 0; i < src.size(); ++i) dst[i].set_data(src[i].detach().contiguous().clone());
    return copy;
  };
  models::EmbeddingModel plain = default_layout_copy();
  EXPECT_TRUE(plain->parameters()[0].is_contiguous());
  // to_channels_last keeps the parameter objects (the optimizer's references stay valid).
  const auto* before = plain->parameters()[0].unsafeGetTensorImpl();
  const auto values = plain->parameters()[0].detach().clone();
  models::to_channels_last(*plain);
  EXPECT_EQ(plain->parameters()[0].unsafeGetTensorImpl(), before);
  EXPECT_TRUE(plain->parameters()[0].is_contiguous(torch::MemoryFormat::ChannelsLast));
  EXPECT_TRUE(torch::equal(plain->parameters()[0].detach(), values));
  // Outputs and gradients against a model held in the default layout all along.
  models::EmbeddingModel reference = default_layout_copy();
  const auto x = torch::randn({8, 1, 28, 28});
  const auto e = model->forward(x), r = reference->forward(x);
  EXPECT_LT((e - r).abs().max().item<double>(), 1e-4 * r.abs().max().item<double>());
  e.pow(2).sum().backward();
  r.pow(2).sum().backward();
  const auto gm = model->parameters()[0].grad(), gr = reference->parameters()[0].grad();
  EXPECT_LT((gm - gr).abs().max().item<double>(), 1e-3 * gr.abs().max().item<double>());
}

// Backbone shapes and torchvision parameter layout; checkpoint round trip.
#include <gtest/gtest.h>
#include <torch/torch.h>

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

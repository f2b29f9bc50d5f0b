// Every config shipped in configs/ loads, resolves its _BASE_ chain and validates.
#include <gtest/gtest.h>

#include <filesystem>

#include "dualtune/config/config.h"

using dualtune::config::Config;

TEST(ShippedConfigs, AllLoadAndValidate) {
  int n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(std::string(DUALTUNE_SOURCE_DIR) + "/configs")) {
    if (e.path().extension() != ".yml") continue;
    EXPECT_NO_THROW(Config::load(e.path().string()).validate()) << e.path();
    ++n;
  }
  EXPECT_GE(n, 7);
}

TEST(ShippedConfigs, DemoConfigsMatchTheReferenceProtocol) {
  // The reference protocol (docs/RESULTS.md): old convnet-s, 6 epochs, classes 0-4, Adam 1e-3,
  // wd 5e-4, batch 128, cosine, label smoothing 0.1, pad 2 + flip; new convnet-m, 3 epochs, D 128.
  const std::string dir = std::string(DUALTUNE_SOURCE_DIR) + "/configs/fmnist/";
  const auto old_cfg = Config::load(dir + "old_convnet_s.yml");
  EXPECT_EQ(old_cfg.get<std::string>("model.backbone"), "convnet-s");
  EXPECT_EQ(old_cfg.get<std::string>("data.classes"), "0-4");
  EXPECT_EQ(old_cfg.get<int64_t>("optim.epochs"), 6);
  EXPECT_DOUBLE_EQ(old_cfg.get<double>("optim.lr"), 1e-3);
  EXPECT_DOUBLE_EQ(old_cfg.get<double>("loss.label_smoothing"), 0.1);
  const auto new_cfg = Config::load(dir + "new_dual_tuning.yml");
  EXPECT_EQ(new_cfg.get<std::string>("model.backbone"), "convnet-m");
  EXPECT_EQ(new_cfg.get<std::string>("data.classes"), "all");
  EXPECT_EQ(new_cfg.get<int64_t>("optim.epochs"), 3);
  EXPECT_EQ(new_cfg.get<int64_t>("model.embedding_dim"), 128);
  EXPECT_EQ(new_cfg.get<std::string>("compat.method"), "dual-tuning");
}

TEST(ShippedConfigs, GlyphConfigsDescribeTheOpenSetBenchmarkAndMirrorTheMethods) {
  const std::string glyphs = std::string(DUALTUNE_SOURCE_DIR) + "/configs/glyphs/";
  const std::string fmnist = std::string(DUALTUNE_SOURCE_DIR) + "/configs/fmnist/";
  // The benchmark's layout and pixel statistics (tools/openset/README.md), no flips.
  const auto old_cfg = Config::load(glyphs + "old_convnet_s.yml");
  EXPECT_EQ(old_cfg.get<std::string>("data.format"), "image_folder");
  EXPECT_EQ(old_cfg.get<std::string>("data.train_split"), "train-old");
  EXPECT_EQ(old_cfg.get<std::string>("data.test_split"), "test");
  EXPECT_EQ(old_cfg.get<std::string>("data.classes"), "all");
  EXPECT_EQ(old_cfg.get<int64_t>("data.height"), 32);
  EXPECT_EQ(old_cfg.get<int64_t>("data.width"), 32);
  EXPECT_EQ(old_cfg.get<int64_t>("data.channels"), 1);
  EXPECT_EQ(old_cfg.get<std::vector<double>>("data.mean"), std::vector<double>{0.7877});
  EXPECT_EQ(old_cfg.get<std::vector<double>>("data.std"), std::vector<double>{0.3361});
  EXPECT_FALSE(old_cfg.get<bool>("augment.flip"));
  EXPECT_FALSE(old_cfg.get<bool>("test_accuracy"));  // test classes are unseen: nothing to classify
  EXPECT_EQ(old_cfg.get<std::string>("model.backbone"), "convnet-s");
  // Every Fashion-MNIST new-model config has a glyph twin: convnet-m on train-new, the
  // same compatibility method and weights, and the same data settings as the old model.
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(fmnist)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("new_", 0) != 0) continue;
    ++n;
    ASSERT_TRUE(std::filesystem::exists(glyphs + name)) << name;
    const auto f = Config::load(fmnist + name), g = Config::load(glyphs + name);
    EXPECT_EQ(g.get<std::string>("model.backbone"), "convnet-m") << name;
    EXPECT_EQ(g.get<std::string>("data.train_split"), "train-new") << name;
    EXPECT_EQ(g.get<std::vector<double>>("data.mean"), old_cfg.get<std::vector<double>>("data.mean")) << name;
    EXPECT_FALSE(g.get<bool>("augment.flip")) << name;
    EXPECT_EQ(g.get<int64_t>("model.embedding_dim"), f.get<int64_t>("model.embedding_dim")) << name;
    for (const char* key : {"compat.method", "compat.proto_form", "compat.proto_margin_unit"})
      EXPECT_EQ(g.get<std::string>(key), f.get<std::string>(key)) << name << " " << key;
    for (const char* key : {"compat.l2_weight", "compat.bct_weight", "compat.proto_weight", "compat.proto_margin",
                            "compat.proto_scale", "compat.n2o_weight", "compat.o2n_weight", "compat.mix_weight"})
      EXPECT_EQ(g.get<double>(key), f.get<double>(key)) << name << " " << key;
    for (const char* key : {"compat.bct_rescale", "compat.n2o_extended"})
      EXPECT_EQ(g.get<bool>(key), f.get<bool>(key)) << name << " " << key;
  }
  EXPECT_EQ(n, 4);
}

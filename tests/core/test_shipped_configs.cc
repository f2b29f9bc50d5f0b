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
  // DESIGN.md "Reference results": old convnet-s, 6 epochs, classes 0-4, Adam 1e-3,
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

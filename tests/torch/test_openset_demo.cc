// `dualtune demo --scenario openset` on a tiny generated glyph benchmark in the
// generator's layout (tests/tiny_glyphs.h): the configs/glyphs runs train a step or two
// each (old on train-old, new on train-new, the old model knowing half the new classes),
// evaluation runs leave-one-out on the unseen test classes, and a missing or incomplete
// data root fails before anything is written, naming the generator.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "../tiny_glyphs.h"
#include "dualtune/config/config.h"
#include "dualtune/features/feature_set.h"
#include "dualtune/features/npy.h"
#include "dualtune/util/atomic_file.h"
#include "tiny_data.h"

using namespace dualtune;
namespace fs = std::filesystem;

TEST(OpensetDemo, RunsTheStoryOnATinyGlyphBenchmark) {
  const auto dir = testdata::temp_dir("openset");
  testdata::write_tiny_glyphs(dir + "/glyphs");  // train-old 4 classes, train-new 8, test 4 unseen (40 images)
  int status = 0;
  const auto out = testdata::run_command(std::string(DUALTUNE_BINARY) + " demo --scenario openset --data-root " + dir +
                                             "/glyphs --out " + dir + "/out --epochs-old 1 --epochs-new 1 --threads 1 "
                                             "--set data.workers=1",
                                         &status);
  ASSERT_EQ(status, 0) << out;
  EXPECT_NE(out.find("glyph benchmark " + dir + "/glyphs: train-old 4 classes / 96 images, train-new 8 / 192, "
                     "test 4 / 40"),
            std::string::npos)
      << out;
  const std::string sdir = dir + "/out/openset/seed0";
  const auto old_cfg = config::Config::load(sdir + "/old/config.yml");
  EXPECT_EQ(old_cfg.get<std::string>("data.train_split"), "train-old");
  EXPECT_EQ(old_cfg.get<std::string>("model.backbone"), "convnet-s");
  for (const char* m : {"old", "independent", "l2", "bct", "dual-tuning"}) {
    const auto meta = nlohmann::json::parse(read_file(sdir + "/" + m + "/meta.json"));
    EXPECT_TRUE(meta["complete"].get<bool>()) << m;
    EXPECT_EQ(meta["num_classes"].get<int>(), std::string(m) == "old" ? 4 : 8) << m;
    EXPECT_EQ(meta["backbone"].get<std::string>(), std::string(m) == "old" ? "convnet-s" : "convnet-m") << m;
    const auto f = features::FeatureSet::load(sdir + "/features/" + m);
    EXPECT_EQ(f.n, 40) << m;  // every test image, classes no model trained on
    EXPECT_EQ(f.class_names, (std::vector<std::string>{"ac08", "ac09", "ac0a", "ac0b"})) << m;
  }
  // Classes are matched by folder name: the old model knows 4 of the 8; BCT synthesizes the other 4 rows.
  EXPECT_NE(out.find("the old model knows 4 of the 8 training classes"), std::string::npos) << out;
  EXPECT_NE(out.find("extended old classifier: 8 rows (4 synthesized"), std::string::npos) << out;
  EXPECT_EQ(npy::load(sdir + "/bct/prototypes/prototypes.npy").shape, (std::vector<int64_t>{8, 128}));
  const auto rep = nlohmann::json::parse(read_file(sdir + "/report/report.json"));
  EXPECT_EQ(rep["num_query"].get<int>(), 40);
  EXPECT_EQ(rep["upgrades"].size(), 4u);
  EXPECT_EQ(rep["upgrades"][0]["flips"]["new_old"]["queries"].get<int>(), 40);
  const auto summary = read_file(dir + "/out/openset/summary.md");
  EXPECT_NE(summary.find("scenario openset"), std::string::npos) << summary;
  EXPECT_NE(summary.find("the open-set glyph test split"), std::string::npos) << summary;
  EXPECT_EQ(summary.find("Fashion-MNIST"), std::string::npos) << summary;
  fs::remove_all(dir);
}

TEST(OpensetDemo, MissingOrIncompleteDataRootIsAClearErrorBeforeAnyWork) {
  const auto dir = testdata::temp_dir("openset_bad");
  const std::string demo = std::string(DUALTUNE_BINARY) + " demo --scenario openset --out " + dir + "/out";
  int status = 0;
  const auto none = testdata::run_command(demo, &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(none.find("expected --data-root DIR, the generated open-set glyph benchmark, found none"),
            std::string::npos)
      << none;
  EXPECT_NE(none.find("make_glyphs.py --out DIR"), std::string::npos) << none;

  const auto missing = testdata::run_command(demo + " --data-root " + dir + "/glyphs", &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(missing.find(dir + "/glyphs: no such directory"), std::string::npos) << missing;
  EXPECT_NE(missing.find("make_glyphs.py --out " + dir + "/glyphs"), std::string::npos) << missing;

  testdata::write_tiny_glyphs(dir + "/glyphs");
  fs::remove_all(dir + "/glyphs/train-new/ac05");
  const auto incomplete = testdata::run_command(demo + " --data-root " + dir + "/glyphs", &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(incomplete.find("train-new has 7 class folders where manifest.json lists 8; missing: ac05"),
            std::string::npos)
      << incomplete;
  EXPECT_FALSE(fs::exists(dir + "/out"));  // nothing written
  fs::remove_all(dir);
}

// The open-set glyph benchmark's completeness check: a complete tiny generation passes
// with its counts; a missing root, an unfinished generation (no manifest), a missing
// class folder or image, and a test class seen in training are errors that name the
// generator and what is wrong.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../tiny_glyphs.h"
#include "dualtune/data/glyph_benchmark.h"
#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"

namespace fs = std::filesystem;
using dualtune::data::check_glyph_benchmark;

namespace {

std::string fresh_glyphs(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("dt_test_glyphs_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  dualtune::testdata::write_tiny_glyphs(p.string());
  return p.string();
}

/// The error message of check_glyph_benchmark(root), or "" when it passes.
std::string error_of(const std::string& root) {
  try {
    check_glyph_benchmark(root);
  } catch (const dualtune::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(GlyphBenchmark, CompleteGenerationPassesWithItsCounts) {
  const std::string root = fresh_glyphs("ok");
  const auto b = check_glyph_benchmark(root);
  EXPECT_EQ(b.train_old.classes, 4);
  EXPECT_EQ(b.train_old.images, 96);
  EXPECT_EQ(b.train_new.classes, 8);
  EXPECT_EQ(b.train_new.images, 192);
  EXPECT_EQ(b.test.classes, 4);
  EXPECT_EQ(b.test.images, 40);
  // Files that ImageFolder ignores do not count (the generator's index.csv, hidden files).
  std::ofstream(root + "/test/index.csv") << "path,class\n";
  std::ofstream(root + "/test/ac08/.hidden.png") << "x";
  EXPECT_EQ(check_glyph_benchmark(root).test.images, 40);
  fs::remove_all(root);
}

TEST(GlyphBenchmark, MissingRootOrManifestNamesTheGenerator) {
  const std::string none = (fs::temp_directory_path() / "dt_test_glyphs_does_not_exist").string();
  const std::string e1 = error_of(none);
  EXPECT_NE(e1.find("no such directory"), std::string::npos) << e1;
  EXPECT_NE(e1.find("make_glyphs.py --out " + none), std::string::npos) << e1;
  EXPECT_NE(e1.find("README.md"), std::string::npos) << e1;

  const std::string root = fresh_glyphs("nomanifest");
  fs::remove(root + "/manifest.json");
  const std::string e2 = error_of(root);
  EXPECT_NE(e2.find("manifest.json is missing"), std::string::npos) << e2;
  EXPECT_NE(e2.find("make_glyphs.py"), std::string::npos) << e2;
  std::ofstream(root + "/manifest.json") << "{\"counts\": {}}";
  const std::string e3 = error_of(root);
  EXPECT_NE(e3.find("expected counts.train-old.{classes, images}"), std::string::npos) << e3;
  fs::remove_all(root);
}

TEST(GlyphBenchmark, IncompleteSplitsAreNamed) {
  const std::string root = fresh_glyphs("incomplete");
  fs::remove_all(root + "/train-new/ac03");
  const std::string e1 = error_of(root);
  EXPECT_NE(e1.find("train-new has 7 class folders where manifest.json lists 8; missing: ac03"), std::string::npos)
      << e1;
  EXPECT_NE(e1.find("make_glyphs.py"), std::string::npos) << e1;
  fs::remove_all(root);

  const std::string root2 = fresh_glyphs("image");
  fs::remove(root2 + "/test/ac09/3.png");
  const std::string e2 = error_of(root2);
  EXPECT_NE(e2.find("test has 39 images where manifest.json counts 40"), std::string::npos) << e2;
  fs::remove_all(root2 + "/test");
  const std::string e3 = error_of(root2);
  EXPECT_NE(e3.find("the split folder " + root2 + "/test is missing"), std::string::npos) << e3;
  fs::remove_all(root2);
}

TEST(GlyphBenchmark, TestClassesMustBeUnseenAndOldClassesAmongNew) {
  const std::string root = fresh_glyphs("overlap");
  auto manifest = nlohmann::json::parse(dualtune::read_file(root + "/manifest.json"));
  // Put train-new's class ac01 into test as well: the benchmark would not be open set.
  fs::copy(root + "/train-new/ac01", root + "/test/ac01");
  manifest["splits"]["test"].push_back("ac01");
  manifest["counts"]["test"] = {{"classes", 5}, {"images", 64}};
  std::ofstream(root + "/manifest.json") << manifest.dump();
  const std::string e1 = error_of(root);
  EXPECT_NE(e1.find("test classes also in train-new (the benchmark is open set): ac01"), std::string::npos) << e1;
  fs::remove_all(root);

  const std::string root2 = fresh_glyphs("oldnotnew");
  manifest = nlohmann::json::parse(dualtune::read_file(root2 + "/manifest.json"));
  fs::rename(root2 + "/train-old/ac02", root2 + "/train-old/abff");
  manifest["splits"]["train-old"][2] = "abff";
  std::ofstream(root2 + "/manifest.json") << manifest.dump();
  const std::string e2 = error_of(root2);
  EXPECT_NE(e2.find("train-old classes missing from train-new: abff"), std::string::npos) << e2;
  fs::remove_all(root2);
}

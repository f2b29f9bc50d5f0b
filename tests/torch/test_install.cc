// Install (`cmake --install build --prefix P`): the installed binary finds its private
// library through its relative RUNPATH and the shipped configs and docs relative to
// itself, so the prefix works after being moved; `--version` and `demo --quick` on tiny
// generated data run from there. Provenance: the same in --version and meta.json.
#include <gtest/gtest.h>
#include <torch/version.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "dualtune/util/atomic_file.h"
#include "dualtune/util/provenance.h"
#include "tiny_data.h"

using namespace dualtune;
namespace fs = std::filesystem;

TEST(Provenance, NamesTheLibrariesThisBinaryWasBuiltWith) {
  const auto& p = provenance();
  EXPECT_EQ(p.libtorch, TORCH_VERSION);  // CMake's Torch package version agrees with the headers
  EXPECT_FALSE(p.git_revision.empty());
  if (fs::exists(std::string(DUALTUNE_SOURCE_DIR) + "/.git")) EXPECT_NE(p.git_revision, "unknown");
  EXPECT_EQ(version_text(), "dualtune " + p.version + " (git " + p.git_revision + ")\nlibtorch " + p.libtorch +
                                ", FAISS " + p.faiss + ", OpenCV " + p.opencv + "\n");
}

TEST(Install, InstalledPrefixRunsVersionAndQuickDemoAfterBeingMoved) {
  const auto dir = testdata::temp_dir("install");
  int status = 0;
  auto out = testdata::run_command(std::string(DUALTUNE_CMAKE) + " --install " + DUALTUNE_BUILD_DIR + " --prefix " +
                                       dir + "/prefix",
                                   &status);
  ASSERT_EQ(status, 0) << out;
  for (const char* f : {"bin/dualtune", "lib/dualtune/libdualtune_malloc.so", "share/dualtune/configs/fmnist/old_convnet_s.yml",
                        "share/dualtune/configs/examples/market1501_resnet50.yml", "share/dualtune/docs/README.md",
                        "share/dualtune/docs/INPUTS.md", "share/man/man1/dualtune.1"}) {
    EXPECT_TRUE(fs::exists(dir + "/prefix/" + f)) << f;
  }
  // Relocatable: no absolute path to the build or source tree is left in the binary's RUNPATH.
  out = testdata::run_command("readelf -d " + dir + "/prefix/bin/dualtune", &status);
  EXPECT_NE(out.find("[$ORIGIN/../lib/dualtune]"), std::string::npos) << out;
  EXPECT_EQ(out.find(DUALTUNE_BUILD_DIR), std::string::npos) << out;
  fs::rename(dir + "/prefix", dir + "/moved");
  const std::string bin = dir + "/moved/bin/dualtune";

  out = testdata::run_command(bin + " --version", &status);
  ASSERT_EQ(status, 0) << out;
  EXPECT_EQ(out, version_text());
  out = testdata::run_command("ldd " + bin, &status);
  EXPECT_NE(out.find("libdualtune_malloc.so => " + dir + "/moved/bin/../lib/dualtune/libdualtune_malloc.so"),
            std::string::npos)
      << out;
  out = testdata::run_command(bin + " --help", &status);
  EXPECT_NE(out.find("Shipped configs: " + dir + "/moved/share/dualtune/configs"), std::string::npos) << out;
  EXPECT_NE(out.find("Documentation:   " + dir + "/moved/share/dualtune/docs"), std::string::npos) << out;

  // The quick demo from a directory outside the source and build trees.
  testdata::write_tiny_idx(dir + "/data", 160, 40, 6);
  out = testdata::run_command("cd " + dir + " && " + bin +
                                  " demo --quick --data-root data --out demo --epochs-old 1 "
                                  "--methods dual-tuning --threads 2 --set data.workers=1",
                              &status);
  ASSERT_EQ(status, 0) << out;
  EXPECT_NE(out.find("== configs: " + dir + "/moved/share/dualtune/configs/fmnist"), std::string::npos) << out;
  const std::string seed = dir + "/demo/default/seed0";
  for (const char* f : {"report/report.json", "report/report.md", "report/report.html"})
    EXPECT_TRUE(fs::exists(seed + "/" + f)) << f;
  const auto meta = nlohmann::json::parse(read_file(seed + "/dual-tuning/meta.json"));
  EXPECT_EQ(meta["provenance"], provenance_json());
  const auto report = nlohmann::json::parse(read_file(seed + "/report/report.json"));
  EXPECT_EQ(report["provenance"], provenance_json());
  fs::remove_all(dir);
}

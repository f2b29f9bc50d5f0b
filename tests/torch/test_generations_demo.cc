// `dualtune demo --scenario generations` end to end on a tiny generated IDX set (one
// epoch, a few hundred images): v1 -> v2 -> v3 per method and strategy, the forward
// transformation of v1, one report per lineage and the summary. Not accuracy: the
// wiring (which run is trained against which), and that the summary's numbers are the
// reports' numbers.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "dualtune/features/feature_set.h"
#include "dualtune/util/atomic_file.h"
#include "tiny_data.h"

using namespace dualtune;
namespace fs = std::filesystem;

namespace {

nlohmann::json json_file(const std::string& path) { return nlohmann::json::parse(read_file(path)); }

std::string pct(double v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.1f", 100 * v);
  return buf;
}

}  // namespace

TEST(GenerationsDemo, ThreeGenerationsPerStrategyWithTheirLineageReports) {
  const auto dir = testdata::temp_dir("generations");
  testdata::write_tiny_idx(dir + "/data", 240, 60, 8);
  const std::string cmd = std::string(DUALTUNE_BINARY) + " demo --scenario generations --out " + dir +
                          "/out --data-root " + dir + "/data --epochs-old 1 --epochs-new 1 --methods bct --threads 2 "
                          "--jobs 2 --set data.workers=1 --set transform.epochs=2";
  int status = 0;
  const auto out = testdata::run_command(cmd, &status);
  ASSERT_EQ(status, 0) << out;
  const std::string s = dir + "/out/generations/seed0";

  // Who was trained against whom, from each run's own meta.json.
  const auto v1 = json_file(s + "/v1/meta.json"), v2 = json_file(s + "/v2_bct/meta.json");
  EXPECT_EQ(v1["num_classes"], 4);
  EXPECT_EQ(v2["num_classes"], 7);
  EXPECT_EQ(v2["old_config_hash"], v1["config_hash"]);
  const auto chain = json_file(s + "/v3_bct_chain/meta.json"), multi = json_file(s + "/v3_bct_multi/meta.json");
  EXPECT_EQ(chain["num_classes"], 8);
  EXPECT_EQ(chain["old_config_hash"], v2["config_hash"]);
  EXPECT_FALSE(chain.contains("old_config_hashes"));
  EXPECT_EQ(multi["old_config_hashes"], nlohmann::json({v1["config_hash"], v2["config_hash"]}));
  EXPECT_EQ(json_file(s + "/v3_independent/meta.json")["compat_method"], "independent");
  EXPECT_TRUE(fs::exists(s + "/v3_bct_multi/prototypes_1/prototypes.npy"));  // v2's prototypes, beside v1's

  // h maps v1 (D 128) into v3's space (D 256), for every test image.
  const auto h = json_file(s + "/h_v1_v3/meta.json");
  EXPECT_EQ(h["kind"], "forward_transform");
  EXPECT_EQ(h["old"]["dim"], 128);
  EXPECT_EQ(h["new"]["dim"], 256);
  const auto hv1 = features::FeatureSet::load(s + "/features/h(v1)");
  EXPECT_EQ(hv1.n, 60);
  EXPECT_EQ(hv1.d, 256);

  // One lineage report per strategy: every (newer, older) pair and two generation galleries.
  for (const char* st : {"chain", "multi"}) {
    const auto rep = json_file(s + "/report_bct_" + st + "/report.json");
    ASSERT_EQ(rep["models"].size(), 3u) << st;
    for (int i = 0; i < 3; ++i) EXPECT_EQ(rep["models"][i]["name"], "v" + std::to_string(i + 1)) << st;
    EXPECT_EQ(rep["models"][2]["dim"], 256) << st;
    ASSERT_EQ(rep["upgrades"].size(), 3u) << st;
    ASSERT_EQ(rep["generation_mixes"].size(), 2u) << st;
    EXPECT_EQ(rep["generation_mixes"][0]["galleries"], nlohmann::json({"v1", "v2", "v3"}));
  }
  const auto tr = json_file(s + "/report_transform/report.json");
  ASSERT_EQ(tr["upgrades"].size(), 2u);
  EXPECT_EQ(tr["upgrades"][0]["gallery_model"], "h(v1)");
  EXPECT_EQ(tr["upgrades"][1]["gallery_model"], "v1");

  // The summary's cells are the reports' numbers (one seed: no spread).
  const auto summary = read_file(dir + "/out/generations/summary.md");
  const auto rc = json_file(s + "/report_bct_chain/report.json");
  for (const auto& up : rc["upgrades"]) {
    if (up["new_model"] == "v3" && up["old_model"] == "v1") {
      const auto& no = up["new_old"];
      EXPECT_NE(summary.find(pct(no["map"].get<double>()) + " / " + pct(no["rank1"].get<double>())), std::string::npos)
          << summary;
    }
  }
  const auto& t0 = tr["upgrades"][0]["new_old"];
  EXPECT_NE(summary.find("| independent v3, v1 through h | — | — | " + pct(t0["map"].get<double>()) + " / " +
                         pct(t0["rank1"].get<double>()) + " |"),
            std::string::npos)
      << summary;
  for (const char* row : {"| bct, chain |", "| bct, multi |"}) EXPECT_NE(summary.find(row), std::string::npos) << row;
  EXPECT_NE(summary.find("v1 stays searchable best with: "), std::string::npos);

  // A rerun reuses the 6 trainings and the transform.
  const auto again = testdata::run_command(cmd, &status);
  ASSERT_EQ(status, 0) << again;
  size_t reused = 0;
  for (size_t pos = 0; (pos = again.find("== reusing", pos)) != std::string::npos; ++pos) ++reused;
  EXPECT_EQ(reused, 6u) << again;

  // An unknown method for this scenario is refused by name.
  const auto bad = testdata::run_command(std::string(DUALTUNE_BINARY) + " demo --scenario generations --methods l2 "
                                         "--data-root " + dir + "/data --out " + dir + "/bad", &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(bad.find("unknown method 'l2': expected bct or dual-tuning"), std::string::npos) << bad;
  fs::remove_all(dir);
}

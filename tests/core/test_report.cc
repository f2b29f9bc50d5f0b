// Report files (report.json, report.md, plots) and the eval command's run_eval.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "dualtune/eval/evaluate.h"
#include "dualtune/eval/run_eval.h"
#include "dualtune/features/npy.h"
#include "dualtune/report/report.h"
#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"

namespace fs = std::filesystem;
using namespace dualtune;

namespace {

std::string temp_dir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("dt_test_report_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p.string();
}

features::FeatureSet model(int64_t n, int64_t d, uint32_t seed, float noise) {
  std::mt19937 rng(seed);
  std::mt19937 label_rng(1);  // same labels for every model
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> centres(5 * d);
  for (auto& c : centres) c = g(rng);
  features::FeatureSet s;
  s.n = n;
  s.d = d;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = static_cast<int64_t>(label_rng() % 5);
    s.labels.push_back(c);
    s.cams.push_back(-1);
    s.paths.push_back("img" + std::to_string(i) + ".png");
    for (int64_t k = 0; k < d; ++k) s.features.push_back(centres[c * d + k] + noise * g(rng));
  }
  return s;
}

void expect_no_tmp_files(const std::string& dir) {
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  }
}

}  // namespace

TEST(Report, WritesJsonMarkdownAndPlots) {
  const std::string dir = temp_dir("files");
  eval::EvalOptions opt;
  opt.mixed_fractions = {0, 0.5, 1};
  const auto rep = eval::evaluate_compatibility(
      {eval::loo_model("old", model(120, 6, 1, 1.5f)), eval::loo_model("new-a", model(120, 8, 2, 1.0f)),
       eval::loo_model("new_b", model(120, 8, 3, 0.8f))},
      "old", opt);
  report::write_report(rep, dir);

  const auto j = nlohmann::json::parse(read_file(dir + "/report.json"));
  EXPECT_EQ(j["schema"], "dualtune.compatibility_report/1");
  EXPECT_EQ(j["old_model"], "old");
  EXPECT_EQ(j["models"].size(), 3u);
  EXPECT_EQ(j["matrix"].size(), 9u);
  EXPECT_EQ(j["upgrades"].size(), 2u);
  EXPECT_EQ(j["upgrades"][0]["mixed"].size(), 3u);
  EXPECT_EQ(j["matrix"][0]["metrics"]["cmc"].size(), 50u);
  EXPECT_DOUBLE_EQ(j["matrix"][0]["metrics"]["map"].get<double>(), rep.matrix[0][0].map);
  EXPECT_TRUE(j["upgrades"][0]["verdict"]["map"].contains("gain"));
  // Flip rates: the same numbers as the report structure, per case and per mixed gallery.
  const auto& u0 = rep.upgrades[0];
  EXPECT_DOUBLE_EQ(j["upgrades"][0]["flips"]["new_old"]["negative"].get<double>(), u0.flips_new_old.negative);
  EXPECT_EQ(j["upgrades"][0]["flips"]["new_new"]["positive_flips"].get<int64_t>(), u0.flips_new_new.positive_flips);
  EXPECT_EQ(j["upgrades"][0]["flips"]["new_new"]["queries"].get<int64_t>(), 120);
  EXPECT_DOUBLE_EQ(j["upgrades"][0]["mixed"][1]["flips"]["positive"].get<double>(), u0.mixed[1].flips.positive);

  const std::string md = read_file(dir + "/report.md");
  EXPECT_NE(md.find("| query \\ gallery | old | new-a | new_b |"), std::string::npos) << md;
  EXPECT_NE(md.find("| new-a | new→old |"), std::string::npos) << md;
  EXPECT_NE(md.find("compatible (mAP)"), std::string::npos);
  EXPECT_NE(md.find("r = 0.5"), std::string::npos);
  EXPECT_NE(md.find(report::percent(rep.matrix[1][0].map)), std::string::npos);
  EXPECT_NE(md.find("| new model | new→old negative | new→old positive | new/new negative | new/new positive |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| new-a | " + report::percent(u0.flips_new_old.negative) + " | " +
                    report::percent(u0.flips_new_old.positive) + " | "),
            std::string::npos)
      << md;
  EXPECT_NE(md.find(report::percent(u0.mixed[1].flips.negative) + " / " + report::percent(u0.mixed[1].flips.positive)),
            std::string::npos)
      << md;
  EXPECT_EQ(report::percent(0.58123), "58.12");
  EXPECT_EQ(report::percent(std::nan("")), "n/a");

  if (std::system("command -v gnuplot >/dev/null 2>&1") == 0) {
    for (const char* png : {"cmc_new-a.png", "cmc_new_b.png", "mixed_map.png", "mixed_flips.png", "matrix_map.png"}) {
      EXPECT_TRUE(fs::exists(dir + "/plots/" + png)) << png;
      EXPECT_GT(fs::file_size(dir + "/plots/" + png), 1000u) << png;
      EXPECT_NE(md.find(std::string("plots/") + png), std::string::npos) << png;
    }
  }
  expect_no_tmp_files(dir);
  fs::remove_all(dir);
}

TEST(RunEval, LoadsFeatureDirsAndWritesReport) {
  const std::string dir = temp_dir("run");
  model(80, 6, 1, 1.5f).save(dir + "/old");
  model(80, 8, 2, 1.0f).save(dir + "/new");
  eval::EvalCliOptions opt;
  opt.features = {"old=" + dir + "/old", "new=" + dir + "/new"};
  opt.out_dir = dir + "/out";
  opt.mixed = "0,0.5,1";
  opt.topk = 3;
  std::ostringstream out;
  EXPECT_EQ(eval::run_eval(opt, out), 0);
  EXPECT_NE(out.str().find("| query \\ gallery | old | new |"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("report: " + dir + "/out/report.md"), std::string::npos);
  EXPECT_TRUE(fs::exists(dir + "/out/report.json"));
  const npy::Array ids = npy::load(dir + "/out/topk/new__old.indices.npy");
  EXPECT_EQ(ids.shape, (std::vector<int64_t>{80, 3}));
  const npy::Array self = npy::load(dir + "/out/topk/old__old.indices.npy");
  for (int64_t i = 0; i < 80; ++i) {
    for (int c = 0; c < 3; ++c) EXPECT_NE(self.i64[i * 3 + c], i);  // loo: self removed
  }
  expect_no_tmp_files(dir + "/out");
  fs::remove_all(dir);
}

TEST(RunEval, RejectsBadOptions) {
  EXPECT_EQ(eval::parse_feature_spec("m=a,b", "reid").gallery_dir, "b");
  EXPECT_EQ(eval::parse_feature_spec("m=dir", "loo").query_dir, "dir");
  EXPECT_THROW(eval::parse_feature_spec("nodir", "loo"), Error);
  EXPECT_THROW(eval::parse_feature_spec("m=a,b", "loo"), Error);
  EXPECT_THROW(eval::parse_feature_spec("m=a", "reid"), Error);
  EXPECT_EQ(eval::parse_fractions("0,0.25,1"), (std::vector<double>{0, 0.25, 1}));
  try {
    eval::parse_fractions("0,x,1");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("found 'x'"), std::string::npos);
  }
  EXPECT_THROW(eval::parse_fractions("0,1.5"), Error);
  eval::EvalCliOptions opt;
  opt.out_dir = temp_dir("bad");
  EXPECT_THROW(eval::run_eval(opt, std::cout), Error);  // no --features
  fs::remove_all(opt.out_dir);
}

TEST(RunEval, LineageReportNamesEachPairAndTheGenerationGalleries) {
  const std::string dir = temp_dir("lineage");
  model(90, 6, 1, 1.5f).save(dir + "/v1");
  model(90, 8, 2, 1.2f).save(dir + "/v2");
  model(90, 10, 3, 1.0f).save(dir + "/v3");
  eval::EvalCliOptions opt;
  opt.features = {"v1=" + dir + "/v1", "v2=" + dir + "/v2", "v3=" + dir + "/v3"};
  opt.out_dir = dir + "/out";
  opt.mixed = "0,1";
  opt.lineage = "v1,v2,v3";
  std::ostringstream out;
  ASSERT_EQ(eval::run_eval(opt, out), 0);
  const auto doc = nlohmann::json::parse(read_file(dir + "/out/report.json"));
  ASSERT_EQ(doc["upgrades"].size(), 3u);
  EXPECT_EQ(doc["upgrades"][1]["new_model"], "v3");
  EXPECT_EQ(doc["upgrades"][1]["old_model"], "v2");
  EXPECT_EQ(doc["upgrades"][1]["gallery_model"], "v2");
  ASSERT_EQ(doc["generation_mixes"].size(), 2u);
  EXPECT_EQ(doc["generation_mixes"][0]["galleries"], nlohmann::json({"v1", "v2", "v3"}));
  // Each pair is its own row, named new→old; the generation galleries have their table.
  EXPECT_NE(out.str().find("| v3→v1 | new→old |"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("| v3 | v1 0.5 + v2 0.5 |"), std::string::npos) << out.str();
  // --upgrade with a stand-in gallery, and its errors.
  opt.lineage.clear();
  opt.upgrades = {"v3:v1:v2"};
  opt.out_dir = dir + "/out2";
  std::ostringstream out2;
  ASSERT_EQ(eval::run_eval(opt, out2), 0);
  EXPECT_NE(out2.str().find("| v3→v2 | new→old |"), std::string::npos) << out2.str();
  EXPECT_EQ(eval::parse_upgrade_spec("a:b").gallery, "");
  EXPECT_EQ(eval::parse_upgrade_spec("a:b:c").gallery, "c");
  for (const char* bad : {"a", "a:", ":b", "a:b:c:d", "a::c"}) EXPECT_THROW(eval::parse_upgrade_spec(bad), Error) << bad;
  opt.lineage = "v1,v2";
  EXPECT_THROW(eval::run_eval(opt, out2), Error);  // --lineage and --upgrade together
  fs::remove_all(dir);
}

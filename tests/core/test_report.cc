// Report files (report.json, report.md, plots) and the eval command's run_eval.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <cmath>
#include <cstring>
#include <sstream>

#include "dualtune/app/run_eval.h"
#include "dualtune/eval/evaluate.h"
#include "dualtune/eval/mixed_gallery.h"
#include "dualtune/features/npy.h"
#include "dualtune/report/report.h"
#include "dualtune/report/svg.h"
#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"
#include "dualtune/util/install_paths.h"
#include "dualtune/util/provenance.h"
#include "../torch/tiny_data.h"  // run_command (torch-free)

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
  EXPECT_EQ(j["provenance"], provenance_json());

  const std::string md = read_file(dir + "/report.md");
  EXPECT_NE(md.find("| query \\ gallery | old | new-a | new_b |"), std::string::npos) << md;
  EXPECT_NE(md.find("| new-a | new→old |"), std::string::npos) << md;
  EXPECT_NE(md.find("compatible (mAP)"), std::string::npos);
  EXPECT_NE(md.find("r = 0.5"), std::string::npos);
  EXPECT_NE(md.find("- produced by: dualtune " + provenance().version + " (git " + provenance().git_revision + ")"),
            std::string::npos);
  EXPECT_TRUE(fs::exists(dir + "/report.html"));
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
  app::EvalCliOptions opt;
  opt.features = {"old=" + dir + "/old", "new=" + dir + "/new"};
  opt.out_dir = dir + "/out";
  opt.mixed = "0,0.5,1";
  opt.topk = 3;
  std::ostringstream out;
  EXPECT_EQ(app::run_eval(opt, out), 0);
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

TEST(RunEval, DiagnoseWritesPerClassFilesThatAgreeWithTheReport) {
  const std::string dir = temp_dir("diag");
  model(80, 6, 1, 1.5f).save(dir + "/old");
  model(80, 8, 2, 1.0f).save(dir + "/new");
  write_text_atomic(dir + "/seen.json", R"({"classes": ["0", "1"]})");  // the feature sets name labels 0-4
  app::EvalCliOptions opt;
  opt.features = {"old=" + dir + "/old", "new=" + dir + "/new"};
  opt.out_dir = dir + "/out";
  opt.mixed = "0,1";
  opt.diagnose = true;
  opt.seen_classes = dir + "/seen.json";
  std::ostringstream out;
  EXPECT_EQ(app::run_eval(opt, out), 0);
  EXPECT_NE(out.str().find("diagnostics: " + dir + "/out/diagnostics.md"), std::string::npos) << out.str();
  const auto rep = nlohmann::json::parse(read_file(dir + "/out/report.json"));
  const auto diag = nlohmann::json::parse(read_file(dir + "/out/diagnostics.json"));
  const auto& up = diag["upgrades"][0];
  EXPECT_EQ(up["new_model"], "new");
  ASSERT_EQ(up["groups"].size(), 3u);
  EXPECT_EQ(up["groups"][1]["classes"], 2);  // seen: 0, 1
  EXPECT_EQ(up["groups"][2]["classes"], 3);  // unseen: 2, 3, 4
  // The "all" group's per-query means are the report's mAP and rank-1, computed independently.
  const auto& all = up["groups"][0]["values"];
  const auto& r = rep["upgrades"][0];
  EXPECT_EQ(all["queries"], r["new_old"]["queries"]);
  EXPECT_NEAR(all["ap"]["new_old"].get<double>(), r["new_old"]["map"].get<double>(), 1e-9);
  EXPECT_NEAR(all["ap"]["old_old"].get<double>(), r["old_old"]["map"].get<double>(), 1e-9);
  EXPECT_NEAR(all["top1"]["new_new"].get<double>(), r["new_new"]["rank1"].get<double>(), 1e-9);
  EXPECT_NEAR(all["top1"]["new_old"].get<double>(), r["new_old"]["rank1"].get<double>(), 1e-9);
  expect_no_tmp_files(dir + "/out");

  // loo only; --seen-classes only with --diagnose.
  opt.protocol = "reid";
  opt.features = {"old=" + dir + "/old," + dir + "/old", "new=" + dir + "/new," + dir + "/new"};
  EXPECT_THROW(app::run_eval(opt, out), Error);
  opt.protocol = "loo";
  opt.features = {"old=" + dir + "/old", "new=" + dir + "/new"};
  opt.diagnose = false;
  EXPECT_THROW(app::run_eval(opt, out), Error);
  fs::remove_all(dir);
}

TEST(RunEval, RejectsBadOptions) {
  EXPECT_EQ(app::parse_feature_spec("m=a,b", "reid").gallery_dir, "b");
  EXPECT_EQ(app::parse_feature_spec("m=dir", "loo").query_dir, "dir");
  EXPECT_THROW(app::parse_feature_spec("nodir", "loo"), Error);
  EXPECT_THROW(app::parse_feature_spec("m=a,b", "loo"), Error);
  EXPECT_THROW(app::parse_feature_spec("m=a", "reid"), Error);
  EXPECT_EQ(eval::parse_fractions("0,0.25,1"), (std::vector<double>{0, 0.25, 1}));
  try {
    eval::parse_fractions("0,x,1");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("found 'x'"), std::string::npos);
  }
  EXPECT_THROW(eval::parse_fractions("0,1.5"), Error);
  app::EvalCliOptions opt;
  opt.out_dir = temp_dir("bad");
  EXPECT_THROW(app::run_eval(opt, std::cout), Error);  // no --features
  fs::remove_all(opt.out_dir);
}

TEST(RunEval, LineageReportNamesEachPairAndTheGenerationGalleries) {
  const std::string dir = temp_dir("lineage");
  model(90, 6, 1, 1.5f).save(dir + "/v1");
  model(90, 8, 2, 1.2f).save(dir + "/v2");
  model(90, 10, 3, 1.0f).save(dir + "/v3");
  app::EvalCliOptions opt;
  opt.features = {"v1=" + dir + "/v1", "v2=" + dir + "/v2", "v3=" + dir + "/v3"};
  opt.out_dir = dir + "/out";
  opt.mixed = "0,1";
  opt.lineage = "v1,v2,v3";
  std::ostringstream out;
  ASSERT_EQ(app::run_eval(opt, out), 0);
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
  // report.html has the same rows, with the numbers of report.json.
  const std::string html = read_file(dir + "/out/report.html");
  char row[160];
  std::snprintf(row, sizeof row, "<tr><td>v3</td><td style=\"text-align: left\">v1 50.0 %% + v2 50.0 %%</td><td>%.1f</td>",
                100 * doc["generation_mixes"][1]["metrics"]["map"].get<double>());
  EXPECT_NE(html.find("<h2>Galleries of several generations</h2>"), std::string::npos);
  // Each pair is named and judged against the model it replaces, not the first one.
  EXPECT_NE(html.find("<tr><td>v3→v2</td>"), std::string::npos);
  EXPECT_NE(html.find("new→old: v3 queries, v2 gallery."), std::string::npos);
  const bool v3_v2 = doc["upgrades"][1]["verdict"]["map"]["compatible"].get<bool>();
  EXPECT_NE(html.find(v3_v2 ? "<b>v3</b> can replace <b>v2</b>" : "The queries of <b>v3</b> against <b>v2</b>'s gallery"),
            std::string::npos);
  EXPECT_NE(html.find("upgrades are compatible with the model they replace"), std::string::npos);
  EXPECT_NE(html.find(row), std::string::npos) << row << "\n" << html.substr(html.find("id=\"generations\""), 800);
  // --upgrade with a stand-in gallery, and its errors.
  opt.lineage.clear();
  opt.upgrades = {"v3:v1:v2"};
  opt.out_dir = dir + "/out2";
  std::ostringstream out2;
  ASSERT_EQ(app::run_eval(opt, out2), 0);
  EXPECT_NE(out2.str().find("| v3→v2 | new→old |"), std::string::npos) << out2.str();
  EXPECT_EQ(app::parse_upgrade_spec("a:b").gallery, "");
  EXPECT_EQ(app::parse_upgrade_spec("a:b:c").gallery, "c");
  for (const char* bad : {"a", "a:", ":b", "a:b:c:d", "a::c"}) EXPECT_THROW(app::parse_upgrade_spec(bad), Error) << bad;
  opt.lineage = "v1,v2";
  EXPECT_THROW(app::run_eval(opt, out2), Error);  // --lineage and --upgrade together
  fs::remove_all(dir);
}

namespace {

/// Metrics with the given mAP and rank-1 and a CMC rising from rank-1 towards 1.
eval::Metrics metrics(double map, double rank1) {
  eval::Metrics m;
  m.map = map;
  m.rank1 = rank1;
  for (int k = 1; k <= eval::kCmcRanks; ++k) m.cmc.push_back(1 - (1 - rank1) / std::sqrt(static_cast<double>(k)));
  m.rank5 = m.cmc[4];
  m.rank10 = m.cmc[9];
  m.minp = map / 2;
  m.queries = 100;
  return m;
}

/// A deployed model `old` and two upgrades: `bct` compatible on mAP (and not on rank-1),
/// `independent` not compatible.
eval::CompatibilityReport two_upgrades() {
  eval::CompatibilityReport rep;
  rep.protocol = "loo";
  rep.old_model = "old";
  rep.models = {"old", "bct", "independent"};
  rep.dims = {128, 128, 128};
  rep.num_query = rep.num_gallery = 100;
  const double maps[3][3] = {{0.58, 0.55, 0.10}, {0.70, 0.80, 0.12}, {0.14, 0.11, 0.75}};
  rep.matrix.resize(3);
  for (int q = 0; q < 3; ++q)
    for (int g = 0; g < 3; ++g) rep.matrix[q].push_back(metrics(maps[q][g], 0.8 * maps[q][g] + 0.1));
  for (int n = 1; n < 3; ++n) {
    eval::UpgradeResult u;
    u.new_model = rep.models[n];
    u.old_old = rep.matrix[0][0];
    u.new_new = rep.matrix[n][n];
    u.new_old = rep.matrix[n][0];
    for (double r : {0.0, 0.5, 1.0}) {
      eval::MixedPoint p;
      p.old_fraction = r;
      p.metrics = metrics((1 - r) * u.new_new.map + r * u.new_old.map, 0.5);
      u.mixed.push_back(p);
    }
    u.map = eval::judge_compatibility(u.old_old.map, u.new_new.map, u.new_old.map);
    u.rank1 = eval::judge_compatibility(u.old_old.rank1, u.new_new.rank1, n == 1 ? 0.5 : u.new_old.rank1);
    rep.upgrades.push_back(u);
  }
  return rep;
}

/// The decoded SVG documents of every <img src="data:image/svg+xml;base64,...">.
std::vector<std::string> svg_images(const std::string& html) {
  std::vector<std::string> out;
  const std::string key = "<img alt=\"";
  for (size_t p = 0; (p = html.find(key, p)) != std::string::npos; ++p) {
    const size_t src = html.find("src=\"data:image/svg+xml;base64,", p);
    if (src == std::string::npos) return out;
    const size_t start = src + 31, end = html.find('"', start);
    const std::string b64 = html.substr(start, end - start);
    // Decode (the inverse of svg::base64, checked on its own below).
    std::string bytes;
    int bits = 0;
    uint32_t acc = 0;  // only its low `bits` bits matter; older bits are shifted out
    for (char c : b64) {
      const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
      if (c == '=') break;
      acc = (acc << 6) | static_cast<uint32_t>(std::strchr(k, c) - k);
      if ((bits += 6) >= 8) bytes += static_cast<char>((acc >> (bits -= 8)) & 0xff);
    }
    out.push_back(bytes);
  }
  return out;
}

std::string chromium(const std::string& args, const std::string& profile) {
  int status = 0;
  return testdata::run_command(
      "chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking "
      "--disable-component-update --disable-sync --hide-scrollbars --user-data-dir=" + profile + " " + args + " 2>/dev/null",
      &status);
}

}  // namespace

TEST(ReportHtml, Base64MatchesRfc4648) {
  EXPECT_EQ(report::svg::base64(""), "");
  EXPECT_EQ(report::svg::base64("f"), "Zg==");
  EXPECT_EQ(report::svg::base64("fo"), "Zm8=");
  EXPECT_EQ(report::svg::base64("foo"), "Zm9v");
  EXPECT_EQ(report::svg::base64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(report::svg::escape("a<b & \"c\"'"), "a&lt;b &amp; &quot;c&quot;&#39;");
}

TEST(ReportHtml, VerdictInWordsFirstThenEveryFigureInlined) {
  const auto rep = two_upgrades();
  const std::string html = report::html_report(rep);
  // The verdict, in words, before any figure.
  const size_t headline = html.find("<p class=\"headline mixed\">1 of 2 new models are compatible with the deployed "
                                    "model <b>old</b>: <b>bct</b>. Best cross-model mAP: <b>bct</b>, 70.0 %.</p>");
  ASSERT_NE(headline, std::string::npos) << html.substr(0, 3000);
  EXPECT_LT(headline, html.find("<img"));
  EXPECT_NE(html.find("<span class=\"badge\">compatible</span> <b>bct</b> can replace <b>old</b> without re-extracting "
                      "the gallery: its queries against <b>old</b>'s gallery reach 70.0 % mAP, above the 58.0 % of "
                      "<b>old</b> itself; after re-extraction they reach 80.0 % (update gain 0.55)."),
            std::string::npos);
  EXPECT_NE(html.find("On rank-1 the verdict is the opposite: 50.0 % new→old against 56.4 % old/old."),
            std::string::npos);
  EXPECT_NE(html.find("<span class=\"badge\">not compatible</span> The queries of <b>independent</b> against <b>old</b>'s "
                      "gallery reach 14.0 % mAP, not above the 58.0 % of <b>old</b> itself"),
            std::string::npos);
  // Self-contained: nothing fetched (no link, stylesheet import, url() or remote source).
  for (const char* remote : {"<link", "@import", "url(", "src=\"http", "href=\"http"})
    EXPECT_EQ(html.find(remote), std::string::npos) << remote;
  // Figures: the heatmap, the mixed-gallery chart and one CMC chart per upgrade, as SVG.
  const auto svgs = svg_images(html);
  ASSERT_EQ(svgs.size(), 4u);
  for (const auto& s : svgs) {
    EXPECT_EQ(s.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u) << s.substr(0, 80);
    EXPECT_EQ(s.substr(s.size() - 7), "</svg>\n");
  }
  // The heatmap prints every cell of the matrix (mAP, %, one decimal).
  EXPECT_NE(svgs[0].find("Compatibility matrix"), std::string::npos);
  for (const char* cell : {">58.0<", ">70.0<", ">80.0<", ">14.0<", ">75.0<", ">10.0<"})
    EXPECT_NE(svgs[0].find(cell), std::string::npos) << cell;
  EXPECT_NE(svgs[1].find("Mixed gallery"), std::string::npos);
  EXPECT_NE(svgs[2].find("CMC: bct vs old"), std::string::npos);
  EXPECT_NE(svgs[3].find("CMC: independent vs old"), std::string::npos);
  // Provenance at the bottom.
  EXPECT_NE(html.find("Produced by dualtune " + provenance().version), std::string::npos);
}

// Opens report.html in headless Chromium (Debian's chromium, scripts/install_deps.sh):
// the page's own check marks whether every <img> decoded (naturalWidth > 0), --dump-dom
// shows the mark; a page with one broken figure shows it missing, so the check is not
// vacuous; a screenshot at a laptop's 1366 × 768 is taken (build/report_html_screenshot.png).
TEST(ReportHtml, EveryFigureRendersInHeadlessChromium) {
  ASSERT_EQ(std::system("command -v chromium >/dev/null 2>&1"), 0)
      << "chromium not found: run scripts/install_deps.sh (Debian package chromium)";
  const std::string dir = temp_dir("html");
  report::write_report(two_upgrades(), dir);
  const std::string page = dir + "/report.html", shot = dir + "/screenshot.png";
  const std::string dom =
      chromium("--window-size=1366,768 --screenshot=" + shot + " --dump-dom file://" + page, dir + "/profile1");
  EXPECT_NE(dom.find("data-figures=\"4/4\""), std::string::npos) << dom.substr(0, 2000);
  EXPECT_NE(dom.find("data-rendered=\"all\""), std::string::npos);
  ASSERT_TRUE(fs::exists(shot));
  EXPECT_EQ(read_file(shot).substr(1, 3), "PNG");
  EXPECT_GT(fs::file_size(shot), 20000u);  // a rendered page, not a blank one

  std::string broken = read_file(page);
  const size_t src = broken.find("base64,") + 7;
  broken.replace(src, 40, std::string(40, 'A'));  // the heatmap's SVG no longer parses
  write_text_atomic(dir + "/broken.html", broken);
  const std::string bad = chromium("--dump-dom file://" + dir + "/broken.html", dir + "/profile2");
  EXPECT_NE(bad.find("data-figures=\"3/4\""), std::string::npos) << bad.substr(0, 2000);
  EXPECT_NE(bad.find("data-rendered=\"missing\""), std::string::npos);
  // Kept beside the test binary (the build directory) for a person to look at.
  fs::copy_file(shot, executable_dir() + "/report_html_screenshot.png", fs::copy_options::overwrite_existing);
  fs::remove_all(dir);
}

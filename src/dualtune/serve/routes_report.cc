// GET /api/curve, GET /api/curve/plot, GET /api/report, GET /api/report/plots/{file}:
// the backfill curve and the compatibility report of the gallery's models, as written by
// `dualtune gallery curve`, `dualtune eval` and the demo (files beside the gallery).
#include <algorithm>
#include <cmath>
#include <filesystem>

#include "dualtune/serve/request.h"
#include "dualtune/serve/routes.h"
#include "dualtune/util/atomic_file.h"

namespace fs = std::filesystem;

namespace dualtune::serve {
namespace {

nlohmann::json read_json_file(const std::string& path) {
  try {
    return nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    HTTP_THROW(500, path, " is not valid JSON: ", e.what());
  }
}

void send_png(httplib::Response& res, const std::string& path) {
  HTTP_CHECK(fs::is_regular_file(path), 404, "no plot ", fs::path(path).filename().string());
  res.headers.erase("Cache-Control");
  res.set_header("Cache-Control", "no-cache");
  res.set_content(read_file(path), "image/png");
}

std::string pct(const nlohmann::json& v) {
  if (!v.is_number()) return "n/a";
  char b[32];
  std::snprintf(b, sizeof b, "%.1f %%", 100 * v.get<double>());
  return b;
}

}  // namespace

/// The verdict of report.json's upgrade in words (mAP criterion, REPORT_SCHEMA.md).
std::string verdict_text(const nlohmann::json& upgrade, const std::string& old_model) {
  const auto& v = upgrade.at("verdict").at("map");
  const std::string nm = upgrade.value("new_model", std::string("new"));
  if (v.value("compatible", false)) {
    std::string s = "'" + nm + "' is compatible with '" + old_model + "': its queries against the old gallery reach " +
                    pct(v["new_old"]) + " mAP, above the " + pct(v["old_old"]) + " of old queries, so it can ship before "
                    "the gallery is backfilled.";
    if (v["gain"].is_number()) {
      char b[160];
      std::snprintf(b, sizeof b, " Update gain %.2f: %.0f %% of the improvement of a full backfill (%s) comes without "
                    "re-embedding anything.", v["gain"].get<double>(), 100 * v["gain"].get<double>(), pct(v["new_new"]).c_str());
      s += b;
    }
    return s;
  }
  return "'" + nm + "' is not compatible with '" + old_model + "': its queries against the old gallery reach " +
         pct(v["new_old"]) + " mAP, not above the " + pct(v["old_old"]) + " of old queries, so until the gallery is "
         "backfilled searching with it is no better than keeping the old model.";
}

void get_curve(Context& ctx, const httplib::Request&, httplib::Response& res) {
  const std::string file = ctx.curve_file();
  // A database gallery has no directory beside it: only --curve or --report name files.
  HTTP_CHECK(!file.empty() || !ctx.gallery.cache_dir().empty(), 404, "no backfill curve for this gallery: ",
             ctx.gallery.dir(), " is a database, so expected serve --curve FILE (the curve.json of `dualtune gallery "
             "curve`) or --report REPORT with REPORT/transition/curve.json (the demo)");
  HTTP_CHECK(!file.empty(), 404, "no backfill curve for this gallery: expected ", ctx.gallery.dir(),
             "/curve/curve.json (`dualtune gallery curve ", ctx.gallery.dir(), "`), REPORT/transition/curve.json (the demo) "
             "or --curve FILE");
  nlohmann::json j = read_json_file(file);
  const auto st = ctx.gallery.status();
  const std::string model = ctx.gallery.target_model().name;
  double fraction = 0;
  for (const auto& m : st.models)
    if (m.model.name == model) fraction = m.backfilled;
  const bool plot = fs::exists(fs::path(file).parent_path() / "plots/backfill_map.png");
  send_json(res, {{"source", ctx.public_text(file)},
                  {"title", j.value("title", std::string())},
                  {"curves", j.value("curves", nlohmann::json::array())},
                  {"current", {{"model", model}, {"fraction", fraction}}},
                  {"plot", plot ? nlohmann::json("/api/curve/plot") : nlohmann::json(nullptr)}});
}

void get_curve_plot(Context& ctx, const httplib::Request&, httplib::Response& res) {
  const std::string file = ctx.curve_file();
  HTTP_CHECK(!file.empty(), 404, "no backfill curve for this gallery");
  send_png(res, (fs::path(file).parent_path() / "plots/backfill_map.png").string());
}

void get_report(Context& ctx, const httplib::Request&, httplib::Response& res) {
  const std::string dir = ctx.report_dir();
  HTTP_CHECK(!dir.empty() || !ctx.options.report_dir.empty() || !ctx.gallery.cache_dir().empty(), 404,
             "no compatibility report for this gallery: ", ctx.gallery.dir(), " is a database, so expected serve "
             "--report DIR with DIR/report.json (`dualtune eval --out DIR`)");
  HTTP_CHECK(!dir.empty(), 404, "no compatibility report for this gallery: expected ",
             ctx.options.report_dir.empty() ? ctx.gallery.dir() + "/report" : ctx.options.report_dir,
             "/report.json (`dualtune eval --out DIR`, then serve --report DIR)");
  const nlohmann::json report = read_json_file(dir + "/report.json");
  std::vector<std::string> plots;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir + "/plots", ec))
    if (e.path().extension() == ".png") plots.push_back("/api/report/plots/" + e.path().filename().string());
  std::sort(plots.begin(), plots.end());
  // The upgrade of this gallery: the report's old model is the deployed one and its new
  // model the one rolling out (else any other model of the gallery).
  const auto models = ctx.gallery.models();
  auto in_gallery = [&](const std::string& name, gallery::Role role) {
    return std::any_of(models.begin(), models.end(), [&](const auto& m) { return m.name == name && m.role == role; });
  };
  const std::string old_model = report.value("old_model", std::string());
  nlohmann::json upgrade = nullptr;
  for (const gallery::Role role : {gallery::Role::kRollingOut, gallery::Role::kDeployed, gallery::Role::kRolledBack,
                                   gallery::Role::kRetired})
    for (const auto& u : report.value("upgrades", nlohmann::json::array()))
      if (upgrade.is_null() && in_gallery(u.value("new_model", std::string()), role)) upgrade = u;
  nlohmann::json verdict = nullptr;
  if (!upgrade.is_null() && upgrade.contains("verdict"))
    verdict = {{"new_model", upgrade["new_model"]},
               {"old_model", old_model},
               {"compatible", upgrade["verdict"]["map"].value("compatible", false)},
               {"text", verdict_text(upgrade, old_model)}};
  send_json(res, {{"source", ctx.public_text(dir + "/report.json")},
                  {"plots", plots},
                  {"upgrade", upgrade},
                  {"verdict", verdict},
                  {"report", report}});
}

void get_report_plot(Context& ctx, const httplib::Request& req, httplib::Response& res) {
  const std::string dir = ctx.report_dir();
  HTTP_CHECK(!dir.empty() || !ctx.options.report_dir.empty() || !ctx.gallery.cache_dir().empty(), 404,
             "no compatibility report for this gallery: ", ctx.gallery.dir(), " is a database, so expected serve "
             "--report DIR with DIR/report.json (`dualtune eval --out DIR`)");
  HTTP_CHECK(!dir.empty(), 404, "no compatibility report for this gallery");
  const std::string name = req.matches[1].str();
  HTTP_CHECK(name.find("..") == std::string::npos && fs::path(name).extension() == ".png", 404, "no plot '", name, "'");
  send_png(res, dir + "/plots/" + name);
}

}  // namespace dualtune::serve

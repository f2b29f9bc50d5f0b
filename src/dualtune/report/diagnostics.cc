#include "dualtune/report/diagnostics.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "dualtune/report/report.h"
#include "dualtune/util/atomic_file.h"

namespace dualtune::report {
namespace {

using nlohmann::json;

json number(double x) { return std::isfinite(x) ? json(x) : json(nullptr); }

json values_json(const eval::DiagnosticValues& v) {
  return json{{"queries", v.queries},
              {"ap", {{"old_old", number(v.ap_old_old)}, {"new_new", number(v.ap_new_new)}, {"new_old", number(v.ap_new_old)}}},
              {"top1",
               {{"old_old", number(v.top1_old_old)}, {"new_new", number(v.top1_new_new)}, {"new_old", number(v.top1_new_old)}}},
              {"centre_margin", {{"old", number(v.centre_margin_old)}, {"new", number(v.centre_margin_new)}}},
              {"nn_margin", {{"old", number(v.nn_margin_old)}, {"new", number(v.nn_margin_new)}}},
              {"alignment", number(v.alignment)},
              {"own_mean_rank1", number(v.own_mean_rank1)}};
}

std::string margin(double x) {
  if (!std::isfinite(x)) return "n/a";
  char b[32];
  std::snprintf(b, sizeof b, "%.3f", x);
  return b;
}

std::string row(const std::string& head, const eval::DiagnosticValues& v) {
  return "| " + head + " | " + std::to_string(v.queries) + " | " + percent(v.ap_new_old) + " / " +
         percent(v.top1_new_old) + " | " + percent(v.ap_old_old) + " / " + percent(v.top1_old_old) + " | " +
         percent(v.ap_new_new) + " / " + percent(v.top1_new_new) + " | " + margin(v.centre_margin_old) + " / " +
         margin(v.centre_margin_new) + " | " + margin(v.nn_margin_old) + " / " + margin(v.nn_margin_new) + " | " +
         margin(v.alignment) + " | " + percent(v.own_mean_rank1) + " |\n";
}

const char* kColumns =
    " | queries | new→old mAP / top-1 | old/old mAP / top-1 | new/new mAP / top-1 | centre margin old / new | NN "
    "margin old / new | alignment | own mean nearest |\n|---|---|---|---|---|---|---|---|---|---|\n";

}  // namespace

std::string diagnostics_json(const std::vector<eval::UpgradeDiagnostics>& d) {
  json ups = json::array();
  for (const auto& u : d) {
    json groups = json::array(), classes = json::array();
    for (const auto& g : u.groups) groups.push_back({{"name", g.name}, {"classes", g.classes}, {"values", values_json(g.values)}});
    for (const auto& c : u.classes) {
      classes.push_back({{"label", c.label}, {"name", c.name}, {"seen", c.seen}, {"items", c.items},
                         {"values", values_json(c.values)}});
    }
    ups.push_back({{"old_model", u.old_model}, {"new_model", u.new_model}, {"groups", groups}, {"classes", classes}});
  }
  return json{{"upgrades", ups}}.dump(2) + "\n";
}

std::string diagnostics_markdown(const std::vector<eval::UpgradeDiagnostics>& d) {
  std::string md =
      "## Per-class diagnostics\n\nmAP and top-1 in %, means over each group's queries (leave-one-out). Margins are "
      "cosine differences, means over queries, for the old query eo (old) and the new query en (new) against the "
      "OLD space: centre margin = cos to the own old class mean − the highest cos to another old class mean; NN "
      "margin = cos to the nearest same-class old gallery item − cos to the nearest other-class one (> 0 iff "
      "top-1 right). Alignment = mean over classes of cos(new class mean, old class mean); own mean nearest = "
      "classes whose new mean is nearest to their own old mean.\n\n| model | group" +
      std::string(kColumns);
  for (const auto& u : d) {
    for (const auto& g : u.groups) md += row(u.new_model + " | " + g.name + " (" + std::to_string(g.classes) + ")", g.values);
  }
  for (const auto& u : d) {
    if (u.classes.size() > kMaxClassRows) continue;
    md += "\n### " + u.new_model + " by class\n\n| class | seen" + std::string(kColumns);
    for (const auto& c : u.classes) md += row(c.name + " | " + (c.seen ? "yes" : "no"), c.values);
  }
  return md;
}

void write_diagnostics(const std::vector<eval::UpgradeDiagnostics>& d, const std::string& out_dir) {
  ensure_writable_dir(out_dir);
  write_text_atomic((std::filesystem::path(out_dir) / "diagnostics.json").string(), diagnostics_json(d));
  write_text_atomic((std::filesystem::path(out_dir) / "diagnostics.md").string(), diagnostics_markdown(d));
}

}  // namespace dualtune::report

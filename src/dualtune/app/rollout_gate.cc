#include "dualtune/app/rollout_gate.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "dualtune/eval/evaluate.h"
#include "dualtune/features/feature_set.h"
#include "dualtune/report/report.h"
#include "dualtune/util/error.h"

namespace fs = std::filesystem;

namespace dualtune::app {
namespace {

double number(const nlohmann::json& metrics, const char* key) {
  const auto it = metrics.find(key);
  return it != metrics.end() && it->is_number() ? it->get<double>() : NAN;
}

/// "61.20%" or "n/a".
std::string pct(double x) {
  const std::string p = report::percent(x);
  return p == "n/a" ? p : p + "%";
}

}  // namespace

gallery::RolloutGate gate_from_features(const std::string& old_dir, const std::string& new_dir, const GateModels& m,
                                        int threads) {
  // Each directory's own errors (missing files, sizes) name the directory.
  auto g = gate_from_feature_sets(features::FeatureSet::load(old_dir), features::FeatureSet::load(new_dir), m, threads);
  g.probe = "features " + old_dir + " " + new_dir;
  return g;
}

gallery::RolloutGate gate_from_feature_sets(features::FeatureSet fo, features::FeatureSet fn, const GateModels& m,
                                            int threads) {
  DT_CHECK(fo.d == m.old_dim, "rollout gate: the deployed model's probe features have d = ", fo.d, "; expected the "
           "deployed model '", m.old_name, "''s d = ", m.old_dim);
  DT_CHECK(fn.d == m.new_dim, "rollout gate: the new model's probe features have d = ", fn.d, "; expected '",
           m.new_name, "''s d = ", m.new_dim);
  DT_CHECK(fo.n == fn.n && fo.paths == fn.paths, "rollout gate: expected the same probe images in the same order for "
           "both models, found ", fo.n, " and ", fn.n, " rows with different paths");
  int64_t labelled = 0;
  for (int64_t l : fo.labels) labelled += l >= 0;
  DT_CHECK(labelled >= 2, "rollout gate: the probe set has ", labelled, " labelled items; expected a labelled probe "
           "set (labels.npy) of at least 2 items");
  eval::EvalOptions eo;
  eo.upgrades = {{m.new_name, m.old_name, ""}};
  eo.mixed_fractions.clear();  // the gate needs the cross-test only
  eo.tar_far = false;
  eo.threads = threads;
  std::vector<eval::ModelFeatures> models;
  models.push_back(eval::loo_model(m.old_name, std::move(fo)));
  models.push_back(eval::loo_model(m.new_name, std::move(fn)));
  const auto rep = eval::evaluate_compatibility(models, m.old_name, eo);
  const eval::UpgradeResult& u = rep.upgrades.at(0);
  gallery::RolloutGate g;
  g.probe = "features in memory";  // the caller says which
  g.old_old_map = u.old_old.map, g.new_old_map = u.new_old.map, g.new_new_map = u.new_new.map;
  g.old_old_top1 = u.old_old.rank1, g.new_old_top1 = u.new_old.rank1, g.new_new_top1 = u.new_new.rank1;
  g.queries = u.new_old.queries;
  return g;
}

gallery::RolloutGate gate_from_report(const std::string& report, const GateModels& m) {
  const std::string path = fs::is_directory(report) ? (fs::path(report) / "report.json").string() : report;
  std::ifstream is(path);
  DT_CHECK(is.good(), "rollout gate: cannot read the eval report ", path, " (expected report.json of `dualtune eval`)");
  std::stringstream ss;
  ss << is.rdbuf();
  const auto doc = nlohmann::json::parse(ss.str(), nullptr, false);
  DT_CHECK(doc.is_object() && doc.value("schema", std::string()).rfind("dualtune.compatibility_report/", 0) == 0,
           "rollout gate: ", path, " is not a `dualtune eval` report (expected JSON with schema "
           "dualtune.compatibility_report/1)");
  const auto upgrades = doc.value("upgrades", nlohmann::json::array());
  const nlohmann::json* pick = nullptr;
  std::vector<const nlohmann::json*> own;  // upgrades judged on the old model's own gallery
  std::string listed;
  for (const auto& u : upgrades) {
    const std::string n = u.value("new_model", ""), o = u.value("old_model", ""), g = u.value("gallery_model", o);
    listed += (listed.empty() ? "" : ", ") + n + "→" + g;
    if (g != o) continue;  // new→h(old) judges a transformed gallery, not the deployed one
    own.push_back(&u);
    if (n == m.new_name && o == m.old_name) pick = &u;
  }
  if (!pick && own.size() == 1) pick = own[0];
  DT_CHECK(pick, "rollout gate: ", path, " has no upgrade ", m.new_name, "→", m.old_name, " and not exactly one "
           "upgrade against its old model's own gallery; it has ", listed.empty() ? "none" : listed,
           " (expected a report of `dualtune eval --features ", m.old_name, "=DIR --features ", m.new_name, "=DIR --old ",
           m.old_name, "`)");
  const std::string n = pick->value("new_model", ""), o = pick->value("old_model", "");
  for (const auto& md : doc.value("models", nlohmann::json::array())) {
    const std::string name = md.value("name", "");
    const int64_t d = md.value("dim", int64_t(0));
    DT_CHECK(name != o || d == m.old_dim, "rollout gate: the report's old model '", o, "' embeds d = ", d,
             "; the deployed model '", m.old_name, "' embeds d = ", m.old_dim, " (a report of other models?)");
    DT_CHECK(name != n || d == m.new_dim, "rollout gate: the report's new model '", n, "' embeds d = ", d, "; '",
             m.new_name, "' embeds d = ", m.new_dim, " (a report of other models?)");
  }
  gallery::RolloutGate g;
  g.probe = "report " + path + " (" + n + "→" + o + ")";
  const auto row = [&](const char* key) { return pick->value(key, nlohmann::json::object()); };
  g.old_old_map = number(row("old_old"), "map"), g.old_old_top1 = number(row("old_old"), "rank1");
  g.new_old_map = number(row("new_old"), "map"), g.new_old_top1 = number(row("new_old"), "rank1");
  g.new_new_map = number(row("new_new"), "map"), g.new_new_top1 = number(row("new_new"), "rank1");
  g.queries = row("new_old").value("queries", int64_t(0));
  DT_CHECK(std::isfinite(g.old_old_map) && std::isfinite(g.new_old_map), "rollout gate: ", path, ": the upgrade ", n,
           "→", o, " has no old/old or new→old mAP (null)");
  return g;
}

void judge_gate(gallery::RolloutGate& g, bool force, const GateModels& m) {
  if (!g.measured()) {
    DT_CHECK(force, "gallery rollout: no compatibility probe given for '", m.new_name, "'; expected --probe-features "
             "OLD_DIR NEW_DIR (the same labelled images extracted by '", m.old_name, "' and by '", m.new_name,
             "'), --probe-report REPORT.json (a `dualtune eval` report of the two models) or --probe-split; or --force to "
             "roll out without a gate (recorded)");
    g.decision = "forced";
    return;
  }
  // eval's verdict rule, applied to the gate's numbers.
  const eval::Verdict v = eval::judge_compatibility(g.old_old_map, g.new_new_map, g.new_old_map);
  if (v.compatible) {
    g.decision = "passed";
    return;
  }
  DT_CHECK(force, "gallery rollout: refused '", m.new_name, "': its queries against the gallery of '", m.old_name,
           "' (new→old) reach mAP ", pct(g.new_old_map), ", not above old/old ", pct(g.old_old_map), " (top-1 ",
           pct(g.new_old_top1), " vs ", pct(g.old_old_top1), ", ", g.queries, " probe queries, ", g.probe,
           "); expected new→old above old/old (a compatible model). Nothing was changed; --force rolls it out "
           "anyway (recorded)");
  g.decision = "forced";
}

std::string gate_summary(const gallery::RolloutGate& g) {
  if (!g.measured()) return g.decision + " (no probe measured)";
  return "new→old mAP " + pct(g.new_old_map) + (g.new_old_map > g.old_old_map ? " > " : " <= ") + "old/old " +
         pct(g.old_old_map) + " (top-1 " + pct(g.new_old_top1) + " vs " + pct(g.old_old_top1) + "), new/new " +
         pct(g.new_new_map) + ", " + std::to_string(g.queries) + " probe queries (" + g.probe + "): " + g.decision;
}

}  // namespace dualtune::app

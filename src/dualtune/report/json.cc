#include <cmath>
#include <nlohmann/json.hpp>

#include "dualtune/eval/tar_far.h"
#include "dualtune/report/report.h"
#include "dualtune/util/provenance.h"

namespace dualtune::report {
namespace {

using nlohmann::json;

json number(double x) { return std::isfinite(x) ? json(x) : json(nullptr); }

json metrics_json(const eval::Metrics& m) {
  json cmc = json::array();
  for (double c : m.cmc) cmc.push_back(number(c));
  return json{{"map", number(m.map)},
              {"minp", number(m.minp)},
              {"rank1", number(m.rank1)},
              {"rank5", number(m.rank5)},
              {"rank10", number(m.rank10)},
              {"cmc", cmc},
              {"tar_at_far", {{"1e-4", number(m.tar_at_far[0])},
                              {"1e-3", number(m.tar_at_far[1])},
                              {"1e-2", number(m.tar_at_far[2])}}},
              {"queries", m.queries},
              {"skipped", m.skipped}};
}

json verdict_json(const eval::Verdict& v) {
  return json{{"old_old", number(v.old_old)},
              {"new_new", number(v.new_new)},
              {"new_old", number(v.new_old)},
              {"compatible", v.compatible},
              {"gain", number(v.gain)}};
}

json flips_json(const eval::FlipRates& f) {
  return json{{"negative", number(f.negative)},
              {"positive", number(f.positive)},
              {"negative_flips", f.negative_flips},
              {"positive_flips", f.positive_flips},
              {"queries", f.queries}};
}

}  // namespace

std::string report_json(const eval::CompatibilityReport& rep) {
  json models = json::array();
  for (size_t i = 0; i < rep.models.size(); ++i) models.push_back({{"name", rep.models[i]}, {"dim", rep.dims[i]}});
  json matrix = json::array();
  for (size_t q = 0; q < rep.matrix.size(); ++q) {
    for (size_t g = 0; g < rep.matrix[q].size(); ++g) {
      matrix.push_back({{"query", rep.models[q]}, {"gallery", rep.models[g]}, {"metrics", metrics_json(rep.matrix[q][g])}});
    }
  }
  json upgrades = json::array();
  for (const auto& u : rep.upgrades) {
    json mixed = json::array();
    for (const auto& p : u.mixed) {
      mixed.push_back({{"old_fraction", p.old_fraction},
                       {"old_items", p.old_items},
                       {"metrics", metrics_json(p.metrics)},
                       {"flips", flips_json(p.flips)}});
    }
    upgrades.push_back({{"new_model", u.new_model},
                        {"old_model", u.old_model},
                        {"gallery_model", u.gallery_model},
                        {"old_old", metrics_json(u.old_old)},
                        {"new_new", metrics_json(u.new_new)},
                        {"new_old", metrics_json(u.new_old)},
                        {"mixed", mixed},
                        {"flips", {{"new_new", flips_json(u.flips_new_new)}, {"new_old", flips_json(u.flips_new_old)}}},
                        {"verdict", {{"map", verdict_json(u.map)}, {"rank1", verdict_json(u.rank1)}}}});
  }
  json mixes = json::array();
  for (const auto& g : rep.generation_mixes) {
    mixes.push_back({{"query_model", g.spec.query_model},
                     {"galleries", g.spec.galleries},
                     {"fractions", g.spec.fractions},
                     {"metrics", metrics_json(g.metrics)}});
  }
  json far = json::array();
  for (double f : eval::kFarTargets) far.push_back(f);
  json doc{{"schema", "dualtune.compatibility_report/1"},
           {"protocol", rep.protocol},
           {"old_model", rep.old_model},
           {"models", models},
           {"num_query", rep.num_query},
           {"num_gallery", rep.num_gallery},
           {"seed", rep.seed},
           {"max_block_bytes", rep.max_block_bytes},
           {"far_targets", far},
           {"matrix", matrix},
           {"upgrades", upgrades},
           {"generation_mixes", mixes},
           {"provenance", provenance_json()}};
  return doc.dump(2) + "\n";
}

}  // namespace dualtune::report

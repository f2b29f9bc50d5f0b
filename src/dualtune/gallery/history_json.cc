#include "dualtune/gallery/history_json.h"

#include <cmath>

#include "dualtune/util/error.h"

namespace dualtune::gallery {
namespace {

nlohmann::json number(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); }

void read_pair(const nlohmann::json& g, const char* key, double& map, double& top1) {
  const auto c = g.find(key);
  if (c == g.end() || !c->is_object()) return;
  for (const auto& [name, out] : {std::pair<const char*, double*>{"map", &map}, {"top1", &top1}}) {
    const auto v = c->find(name);
    if (v != c->end() && v->is_number()) *out = v->get<double>();
  }
}

}  // namespace

nlohmann::json gate_json(const RolloutGate& g) {
  return {{"decision", g.decision},
          {"probe", g.probe},
          {"queries", g.queries},
          {"old_old", {{"map", number(g.old_old_map)}, {"top1", number(g.old_old_top1)}}},
          {"new_old", {{"map", number(g.new_old_map)}, {"top1", number(g.new_old_top1)}}},
          {"new_new", {{"map", number(g.new_new_map)}, {"top1", number(g.new_new_top1)}}}};
}

RolloutGate gate_from_json(const nlohmann::json& j) {
  RolloutGate g;
  g.decision = j.value("decision", "");
  g.probe = j.value("probe", "");
  g.queries = j.value("queries", int64_t(0));
  read_pair(j, "old_old", g.old_old_map, g.old_old_top1);
  read_pair(j, "new_old", g.new_old_map, g.new_old_top1);
  read_pair(j, "new_new", g.new_new_map, g.new_new_top1);
  return g;
}

nlohmann::json history_event_json(const HistoryEvent& e) {
  return {{"id", e.id},
          {"time", e.time},
          {"event", e.event},
          {"model", e.model},
          {"deployed", e.deployed},
          {"note", e.note},
          {"gate", e.has_gate ? gate_json(e.gate) : nlohmann::json(nullptr)}};
}

nlohmann::json history_json(const std::vector<HistoryEvent>& history) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& e : history) out.push_back(history_event_json(e));
  return out;
}

std::string history_detail_json(const HistoryEvent& e) {
  nlohmann::json j{{"deployed", e.deployed}, {"note", e.note}};
  if (e.has_gate) j["gate"] = gate_json(e.gate);
  return j.dump();
}

void read_history_detail(const std::string& text, HistoryEvent& e) {
  const auto j = nlohmann::json::parse(text, nullptr, false);
  DT_CHECK(j.is_object(), "gallery: history event ", e.id, " has a detail that is not a JSON object: ", text);
  e.deployed = j.value("deployed", "");
  e.note = j.value("note", "");
  const auto g = j.find("gate");
  e.has_gate = g != j.end() && g->is_object();
  if (e.has_gate) e.gate = gate_from_json(*g);
}

const HistoryEvent* current_rollout(const GalleryStatus& st) {
  std::string name;
  for (const Role want : {Role::kRollingOut, Role::kDeployed}) {
    for (const auto& m : st.models)
      if (m.model.role == want) name = m.model.name;
    if (!name.empty()) {
      for (auto it = st.history.rbegin(); it != st.history.rend(); ++it)
        if (it->event == "rollout" && it->model == name) return &*it;
      if (want == Role::kRollingOut) return nullptr;  // rolled out before the history existed
    }
  }
  return nullptr;
}

}  // namespace dualtune::gallery

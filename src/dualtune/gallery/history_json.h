#pragma once
// The lifecycle history and a rollout's compatibility gate as JSON: one format for the
// stores' history.detail column (store_history.cc, pg_store_history.cc), `gallery status
// --json` and GET /api/status (docs/API.md).
//   gate:  {"decision": "passed|forced|ungated", "probe": "...", "queries": 14,
//           "old_old": {"map": 0.61, "top1": 0.71}, "new_old": {...}, "new_new": {...}}
//          (rates are fractions, null when not measured)
//   event: {"id", "time", "event": "rollout|rollback|retire", "model", "deployed", "note",
//           "gate": gate or null}
//   history.detail: {"deployed": "old", "note": "...", "gate": gate}, the gate only on
//           rollout events (the other fields are the table's columns)
#include <nlohmann/json.hpp>

#include "dualtune/gallery/types.h"

namespace dualtune::gallery {

nlohmann::json gate_json(const RolloutGate& gate);
/// Inverse of gate_json; fields absent or null stay unmeasured.
RolloutGate gate_from_json(const nlohmann::json& j);
nlohmann::json history_event_json(const HistoryEvent& e);
nlohmann::json history_json(const std::vector<HistoryEvent>& history);
/// The history.detail text of an event.
std::string history_detail_json(const HistoryEvent& e);
/// Reads history.detail text into e (deployed, note, gate); throws naming e.id when it
/// is not a JSON object.
void read_history_detail(const std::string& text, HistoryEvent& e);

}  // namespace dualtune::gallery

#pragma once
// The lifecycle history and a rollout's compatibility gate as JSON: one format for the
// store's history.detail column (store_history.cc), `gallery status --json` and
// GET /api/status (docs/API.md).
//   gate:  {"decision": "passed|forced|ungated", "probe": "...", "queries": 14,
//           "old_old": {"map": 0.61, "top1": 0.71}, "new_old": {...}, "new_new": {...}}
//          (rates are fractions, null when not measured)
//   event: {"id", "time", "event": "rollout|rollback|retire", "model", "deployed", "note",
//           "gate": gate or null}
#include <nlohmann/json.hpp>

#include "dualtune/gallery/types.h"

namespace dualtune::gallery {

nlohmann::json gate_json(const RolloutGate& gate);
/// Inverse of gate_json; fields absent or null stay unmeasured.
RolloutGate gate_from_json(const nlohmann::json& j);
nlohmann::json history_event_json(const HistoryEvent& e);
nlohmann::json history_json(const std::vector<HistoryEvent>& history);

}  // namespace dualtune::gallery

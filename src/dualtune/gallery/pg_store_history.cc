// PgStore: the lifecycle history (rollouts with their compatibility gate, rollbacks,
// retirements), the SQLite store's rules (store_history.cc). The history table and the
// rolled_back role are in the schema from the gallery's creation (pg_store.cc), so there
// is no upgrade here; history.detail is the JSON text of history_json.h.
#include "dualtune/gallery/history_json.h"
#include "dualtune/gallery/pg_store.h"
#include "dualtune/gallery/store_internal.h"
#include "dualtune/util/error.h"

namespace dualtune::gallery {

void PgStore::add_history(const HistoryEvent& e) {
  DT_CHECK(e.event == "rollout" || e.event == "rollback" || e.event == "retire",
           "gallery: expected a history event rollout, rollback or retire, found '", e.event, "'");
  // Joins the caller's transaction when one is open (Tx nests), so the event commits
  // with the change it records; alone it is a write of its own (write_seq bumped).
  Tx t(*this, true);
  conn_->exec("INSERT INTO history(time, event, model, detail) VALUES ($1, $2, $3, $4)",
              pg::Params().add(detail::now_utc()).add(e.event).add(e.model).add(history_detail_json(e)));
  t.commit();
}

std::vector<HistoryEvent> PgStore::history() {
  auto r = conn_->exec("SELECT id, time, event, model, detail FROM history ORDER BY id");
  std::vector<HistoryEvent> out;
  for (int i = 0; i < r.rows(); ++i) {
    HistoryEvent e;
    e.id = r.get_int(i, 0);
    e.time = r.get_text(i, 1);
    e.event = r.get_text(i, 2);
    e.model = r.get_text(i, 3);
    read_history_detail(r.get_text(i, 4), e);
    out.push_back(std::move(e));
  }
  return out;
}

void PgStore::set_role_recorded(int64_t model_id, Role role, const HistoryEvent& record) {
  Tx t(*this, true);
  set_role(model_id, role);
  add_history(record);
  t.commit();
}

}  // namespace dualtune::gallery

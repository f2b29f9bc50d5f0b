// SqliteStore: the lifecycle history (rollouts with their compatibility gate, rollbacks,
// retirements) and the schema pieces it needs: the history table and the rolled_back
// role, added to a gallery database made before them at its first writable open.
//
// history.detail is the JSON object of history_json.h (history_detail_json).
#include "dualtune/gallery/sqlite_store.h"

#include "dualtune/gallery/history_json.h"
#include "dualtune/gallery/store_internal.h"
#include "dualtune/util/error.h"

namespace dualtune::gallery {
namespace {

const char* kHistoryTable = R"sql(
CREATE TABLE IF NOT EXISTS history (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  time TEXT NOT NULL,
  event TEXT NOT NULL CHECK (event IN ('rollout', 'rollback', 'retire')),
  model TEXT NOT NULL,
  detail TEXT NOT NULL);
)sql";

// The models table of store.cc's schema with 'rolled_back' among the roles. SQLite
// cannot alter a CHECK constraint, so the table is rebuilt (sqlite.org/lang_altertable.html,
// "making other kinds of table schema changes"): new table, copy, drop, rename, in one
// transaction with foreign keys off (versions.model_id keeps pointing at the same ids).
const char* kModelsRebuild = R"sql(
CREATE TABLE models_new (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  dim INTEGER NOT NULL CHECK (dim > 0),
  path TEXT NOT NULL DEFAULT '',
  config_hash TEXT NOT NULL DEFAULT '',
  role TEXT NOT NULL CHECK (role IN ('deployed', 'rolling_out', 'retired', 'rolled_back')),
  created TEXT NOT NULL);
INSERT INTO models_new(id, name, dim, path, config_hash, role, created)
  SELECT id, name, dim, path, config_hash, role, created FROM models;
DROP TABLE models;
ALTER TABLE models_new RENAME TO models;
)sql";

/// (has the history table, models admits rolled_back), read from the schema.
std::pair<bool, bool> lifecycle_schema(sql::Db& db) {
  auto h = db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'history'");
  const bool history = detail::int_value(h) > 0;
  auto m = db.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'models'");
  const bool rolled_back = m.step() && m.column_text(0).find("'rolled_back'") != std::string::npos;
  return {history, rolled_back};
}

}  // namespace

namespace detail {

void upgrade_lifecycle_schema(sql::Db& db) {
  if (lifecycle_schema(db) == std::make_pair(true, true)) return;
  db.exec("PRAGMA foreign_keys = OFF");  // outside the transaction: SQLite ignores it inside one
  sql::Transaction t(db);
  const auto [history, rolled_back] = lifecycle_schema(db);  // another process may have done it meanwhile
  if (!history) db.exec(kHistoryTable);
  if (!rolled_back) db.exec(kModelsRebuild);
  auto fk = db.prepare("PRAGMA foreign_key_check");
  DT_CHECK(!fk.step(), db.path(), ": upgrading the models table broke a foreign key (table ", fk.column_text(0),
           "); the upgrade was rolled back");
  t.commit();
}

}  // namespace detail

void SqliteStore::add_history(const HistoryEvent& e) {
  DT_CHECK(e.event == "rollout" || e.event == "rollback" || e.event == "retire",
           "gallery: expected a history event rollout, rollback or retire, found '", e.event, "'");
  db_->prepare("INSERT INTO history(time, event, model, detail) VALUES (?, ?, ?, ?)")
      .bind(1, detail::now_utc()).bind(2, e.event).bind(3, e.model).bind(4, history_detail_json(e)).run();
}

std::vector<HistoryEvent> SqliteStore::history() {
  std::vector<HistoryEvent> out;
  if (!lifecycle_schema(*db_).first) return out;  // a gallery from before the table, opened read-only
  auto s = db_->prepare("SELECT id, time, event, model, detail FROM history ORDER BY id");
  while (s.step()) {
    HistoryEvent e;
    e.id = s.column_int(0);
    e.time = s.column_text(1);
    e.event = s.column_text(2);
    e.model = s.column_text(3);
    read_history_detail(s.column_text(4), e);
    out.push_back(std::move(e));
  }
  return out;
}

void SqliteStore::set_role_recorded(int64_t model_id, Role role, const HistoryEvent& record) {
  sql::Transaction t(*db_);
  set_role(model_id, role);
  add_history(record);
  t.commit();
}

}  // namespace dualtune::gallery

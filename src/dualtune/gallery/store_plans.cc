// Store: backfill state. The plan of a version (its order and batch grid, fixed once
// planned), the progress counts derived from it, and the items a backfill failed on.
#include "dualtune/gallery/sqlite_store.h"

#include "dualtune/gallery/store_internal.h"
#include "dualtune/util/error.h"

namespace dualtune::gallery {

std::tuple<int64_t, int64_t, int64_t> SqliteStore::plan_counts(int64_t version_id) {
  sql::Transaction t(*db_, false);
  auto p = db_->prepare("SELECT planned FROM plans WHERE version_id = ?");
  p.bind(1, version_id);
  if (!p.step()) return {0, 0, 0};
  const int64_t planned = p.column_int(0);
  auto d = db_->prepare(
      "SELECT count(*) FROM plan_items p JOIN embeddings e ON e.item_id = p.item_id AND e.version_id = p.version_id "
      "WHERE p.version_id = ?");
  d.bind(1, version_id);
  d.step();
  auto f = db_->prepare(
      "SELECT count(*) FROM plan_items p JOIN failures f ON f.item_id = p.item_id AND f.version_id = p.version_id "
      "WHERE p.version_id = ?");
  f.bind(1, version_id);
  f.step();
  const auto out = std::make_tuple(planned, d.column_int(0), f.column_int(0));
  t.commit();
  return out;
}

void SqliteStore::save_plan(const Plan& plan) {
  sql::Transaction t(*db_);
  db_->prepare("DELETE FROM plan_items WHERE version_id = ?").bind(1, plan.version_id).run();
  db_->prepare("INSERT OR REPLACE INTO plans(version_id, order_name, seed, batch_size, planned, created) "
               "VALUES (?, ?, ?, ?, ?, ?)")
      .bind(1, plan.version_id).bind(2, plan.order).bind(3, static_cast<int64_t>(plan.seed))
      .bind(4, plan.batch_size).bind(5, static_cast<int64_t>(plan.items.size())).bind(6, detail::now_utc()).run();
  auto ins = db_->prepare("INSERT INTO plan_items(version_id, position, item_id) VALUES (?, ?, ?)");
  for (size_t p = 0; p < plan.items.size(); ++p)
    ins.bind(1, plan.version_id).bind(2, static_cast<int64_t>(p)).bind(3, plan.items[p]).run();
  // A new plan, a new batch grid: every claim of the old one is void (store.h).
  detail::write_claims(*db_, plan.version_id, static_cast<int64_t>(plan.items.size()), plan.batch_size);
  t.commit();
}

bool SqliteStore::load_plan(int64_t version_id, Plan& plan) {
  sql::Transaction t(*db_, false);
  auto s = db_->prepare("SELECT order_name, seed, batch_size, planned FROM plans WHERE version_id = ?");
  s.bind(1, version_id);
  if (!s.step()) return false;
  plan.version_id = version_id;
  plan.order = s.column_text(0);
  plan.seed = static_cast<uint64_t>(s.column_int(1));
  plan.batch_size = s.column_int(2);
  const int64_t planned = s.column_int(3);
  plan.items.clear();
  plan.items.reserve(static_cast<size_t>(planned));
  auto it = db_->prepare("SELECT item_id FROM plan_items WHERE version_id = ? ORDER BY position");
  it.bind(1, version_id);
  while (it.step()) plan.items.push_back(it.column_int(0));
  t.commit();
  DT_CHECK(static_cast<int64_t>(plan.items.size()) == planned, "gallery ", dir_, ": the backfill plan of version ",
           version_id, " lists ", plan.items.size(), " items, expected ", planned, " (corrupt database)");
  return true;
}

std::vector<std::pair<int64_t, std::string>> SqliteStore::failures(int64_t version_id) {
  auto s = db_->prepare("SELECT item_id, error FROM failures WHERE version_id = ? ORDER BY item_id");
  s.bind(1, version_id);
  std::vector<std::pair<int64_t, std::string>> out;
  while (s.step()) out.emplace_back(s.column_int(0), s.column_text(1));
  return out;
}

void SqliteStore::clear_failures(int64_t version_id) {
  db_->prepare("DELETE FROM failures WHERE version_id = ?").bind(1, version_id).run();
}

}  // namespace dualtune::gallery

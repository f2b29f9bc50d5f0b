// PgStore: the model catalogue and backfill state. Models and their versions, roles and
// retirement, fitted parameters, backfill plans (order and batch grid, fixed once
// planned) and failures; the SQLite store's rules and messages (store_models.cc,
// store_plans.cc), each write one transaction.
#include "dualtune/gallery/pg_store.h"
#include "dualtune/gallery/store_internal.h"
#include "dualtune/util/error.h"

namespace dualtune::gallery {
namespace {

ModelInfo read_model(const pg::Result& r, int i) {
  ModelInfo m;
  m.id = r.get_int(i, 0);
  m.name = r.get_text(i, 1);
  m.dim = r.get_int(i, 2);
  m.path = r.get_text(i, 3);
  m.config_hash = r.get_text(i, 4);
  m.role = parse_role(r.get_text(i, 5));
  m.version_id = r.get_int(i, 6);
  return m;
}

const char* kSelectModels =
    "SELECT m.id, m.name, m.dim, m.path, m.config_hash, m.role, v.id FROM models m "
    "JOIN versions v ON v.model_id = m.id AND v.derived_from IS NULL ";

VersionInfo read_version(const pg::Result& r, int i) {
  VersionInfo v;
  v.id = r.get_int(i, 0);
  v.name = r.get_text(i, 1);
  v.model_id = r.get_int(i, 2);
  v.dim = r.get_int(i, 3);
  v.derived_from = r.is_null(i, 4) ? 0 : r.get_int(i, 4);
  v.transform = r.get_text(i, 5);
  v.generation = r.get_int(i, 6);
  return v;
}

const char* kSelectVersions = "SELECT id, name, model_id, dim, derived_from, transform, generation FROM versions ";

}  // namespace

std::vector<ModelInfo> PgStore::models() {
  auto r = conn_->exec(std::string(kSelectModels) + "ORDER BY m.id");
  std::vector<ModelInfo> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(read_model(r, i));
  return out;
}

std::vector<VersionInfo> PgStore::versions() {
  auto r = conn_->exec(std::string(kSelectVersions) + "ORDER BY id");
  std::vector<VersionInfo> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(read_version(r, i));
  return out;
}

ModelInfo PgStore::model(const std::string& name) {
  auto r = conn_->exec(std::string(kSelectModels) + "WHERE m.name = $1", pg::Params().add(name));
  if (r.rows()) return read_model(r, 0);
  std::string known;
  for (const auto& m : models()) known += (known.empty() ? "" : ", ") + m.name + " (" + role_name(m.role) + ")";
  DT_THROW("gallery ", dir_, ": no model named '", name, "'; the gallery has ", known.empty() ? "no models" : known);
}

VersionInfo PgStore::version(int64_t id) {
  auto r = conn_->exec(std::string(kSelectVersions) + "WHERE id = $1", pg::Params().add(id));
  DT_CHECK(r.rows() == 1, "gallery ", dir_, ": no embedding version with id ", id);
  return read_version(r, 0);
}

ModelInfo PgStore::add_model(const std::string& name, int64_t dim, const std::string& path,
                             const std::string& config_hash, Role role, const HistoryEvent* record) {
  DT_CHECK(!name.empty() && name.find_first_of("@/ \t\n") == std::string::npos,
           "gallery: expected a model name without '@', '/' or spaces, found '", name, "'");
  DT_CHECK(dim > 0, "gallery: model '", name, "': expected an embedding size > 0, found ", dim);
  Tx t(*this, true);
  DT_CHECK(conn_->exec("SELECT count(*) FROM versions WHERE name = $1", pg::Params().add(name)).get_int(0, 0) == 0,
           "gallery ", dir_, ": a model or version named '", name, "' already exists");
  const int64_t model_id =
      conn_->exec("INSERT INTO models(name, dim, path, config_hash, role, created) VALUES ($1, $2, $3, $4, $5, $6) "
                  "RETURNING id",
                  pg::Params().add(name).add(dim).add(path).add(config_hash).add(std::string(role_name(role)))
                      .add(detail::now_utc()))
          .get_int(0, 0);
  conn_->exec("INSERT INTO versions(name, model_id, dim) VALUES ($1, $2, $3)",
              pg::Params().add(name).add(model_id).add(dim));
  if (record) add_history(*record);
  t.commit();
  return model(name);
}

void PgStore::set_role(int64_t model_id, Role role) {
  Tx t(*this, true);
  conn_->exec("UPDATE models SET role = $1 WHERE id = $2", pg::Params().add(std::string(role_name(role))).add(model_id));
  t.commit();
}

VersionInfo PgStore::add_derived_version(const std::string& name, int64_t model_id, int64_t dim, int64_t derived_from,
                                         const std::string& transform) {
  DT_CHECK(derived_from > 0, "gallery: a derived version needs the version it is derived from");
  Tx t(*this, true);
  const int64_t id =
      conn_->exec("INSERT INTO versions(name, model_id, dim, derived_from, transform) VALUES ($1, $2, $3, $4, $5) "
                  "RETURNING id",
                  pg::Params().add(name).add(model_id).add(dim).add(derived_from).add(transform))
          .get_int(0, 0);
  t.commit();
  return version(id);
}

int64_t PgStore::retire_model(int64_t model_id, int64_t promote_model_id, const std::vector<int64_t>& drop_versions,
                              const HistoryEvent* record) {
  Tx t(*this, true);
  set_role(model_id, Role::kRetired);
  if (promote_model_id > 0) set_role(promote_model_id, Role::kDeployed);
  int64_t deleted = 0;
  for (int64_t v : drop_versions) {
    const pg::Params p = pg::Params().add(v);
    deleted += conn_->exec("DELETE FROM embeddings WHERE version_id = $1", p).affected();
    conn_->exec("UPDATE versions SET generation = generation + 1 WHERE id = $1", p);
    conn_->exec("DELETE FROM plan_items WHERE version_id = $1", p);
    conn_->exec("DELETE FROM plans WHERE version_id = $1", p);
    conn_->exec("DELETE FROM failures WHERE version_id = $1", p);
    conn_->exec("DELETE FROM claims WHERE version_id = $1", p);
  }
  if (record) add_history(*record);
  t.commit();
  return deleted;
}

void PgStore::save_fit(const std::string& kind, int64_t query_model_id, int64_t version_id, const std::string& params) {
  Tx t(*this, true);
  conn_->exec("INSERT INTO fits(kind, query_model_id, version_id, params) VALUES ($1, $2, $3, $4) "
              "ON CONFLICT (kind, query_model_id, version_id) DO UPDATE SET params = EXCLUDED.params",
              pg::Params().add(kind).add(query_model_id).add(version_id).add(params));
  t.commit();
}

std::string PgStore::load_fit(const std::string& kind, int64_t query_model_id, int64_t version_id) {
  auto r = conn_->exec("SELECT params FROM fits WHERE kind = $1 AND query_model_id = $2 AND version_id = $3",
                       pg::Params().add(kind).add(query_model_id).add(version_id));
  return r.rows() ? r.get_text(0, 0) : "";
}

// --- backfill plans -----------------------------------------------------------------------

std::tuple<int64_t, int64_t, int64_t> PgStore::plan_counts(int64_t version_id) {
  Tx t(*this, false);
  const pg::Params p = pg::Params().add(version_id);
  auto planned = conn_->exec("SELECT planned FROM plans WHERE version_id = $1", p);
  if (planned.rows() == 0) return {0, 0, 0};
  const int64_t done = conn_->exec("SELECT count(*) FROM plan_items p JOIN embeddings e ON e.item_id = p.item_id "
                                   "AND e.version_id = p.version_id WHERE p.version_id = $1", p).get_int(0, 0);
  const int64_t failed = conn_->exec("SELECT count(*) FROM plan_items p JOIN failures f ON f.item_id = p.item_id "
                                     "AND f.version_id = p.version_id WHERE p.version_id = $1", p).get_int(0, 0);
  t.commit();
  return {planned.get_int(0, 0), done, failed};
}

void PgStore::save_plan(const Plan& plan) {
  Tx t(*this, true);
  conn_->exec("DELETE FROM plan_items WHERE version_id = $1", pg::Params().add(plan.version_id));
  conn_->exec("INSERT INTO plans(version_id, order_name, seed, batch_size, planned, created) "
              "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (version_id) DO UPDATE SET order_name = EXCLUDED.order_name, "
              "seed = EXCLUDED.seed, batch_size = EXCLUDED.batch_size, planned = EXCLUDED.planned, "
              "created = EXCLUDED.created",
              pg::Params().add(plan.version_id).add(plan.order).add(static_cast<int64_t>(plan.seed))
                  .add(plan.batch_size).add(static_cast<int64_t>(plan.items.size())).add(detail::now_utc()));
  pg::CopyBinary copy;
  for (size_t p = 0; p < plan.items.size(); ++p) {
    copy.row(3);
    copy.field(plan.version_id);
    copy.field(static_cast<int64_t>(p));
    copy.field(plan.items[p]);
  }
  conn_->copy_in("COPY plan_items(version_id, position, item_id) FROM STDIN (FORMAT binary)", copy.finish());
  // A new plan, a new batch grid: every claim of the old one is void (store.h).
  write_claims(plan.version_id);
  t.commit();
}

bool PgStore::load_plan(int64_t version_id, Plan& plan) {
  Tx t(*this, false);
  auto s = conn_->exec("SELECT order_name, seed, batch_size, planned FROM plans WHERE version_id = $1",
                       pg::Params().add(version_id));
  if (s.rows() == 0) return false;
  plan.version_id = version_id;
  plan.order = s.get_text(0, 0);
  plan.seed = static_cast<uint64_t>(s.get_int(0, 1));
  plan.batch_size = s.get_int(0, 2);
  const int64_t planned = s.get_int(0, 3);
  plan.items.clear();
  plan.items.reserve(static_cast<size_t>(planned));
  auto it = conn_->exec("SELECT item_id FROM plan_items WHERE version_id = $1 ORDER BY position",
                        pg::Params().add(version_id), true);
  for (int i = 0; i < it.rows(); ++i) plan.items.push_back(it.get_int(i, 0));
  t.commit();
  DT_CHECK(static_cast<int64_t>(plan.items.size()) == planned, "gallery ", dir_, ": the backfill plan of version ",
           version_id, " lists ", plan.items.size(), " items, expected ", planned, " (corrupt database)");
  return true;
}

std::vector<std::pair<int64_t, std::string>> PgStore::failures(int64_t version_id) {
  auto r = conn_->exec("SELECT item_id, error FROM failures WHERE version_id = $1 ORDER BY item_id",
                       pg::Params().add(version_id));
  std::vector<std::pair<int64_t, std::string>> out;
  for (int i = 0; i < r.rows(); ++i) out.emplace_back(r.get_int(i, 0), r.get_text(i, 1));
  return out;
}

void PgStore::clear_failures(int64_t version_id) {
  Tx t(*this, true);
  conn_->exec("DELETE FROM failures WHERE version_id = $1", pg::Params().add(version_id));
  t.commit();
}

}  // namespace dualtune::gallery

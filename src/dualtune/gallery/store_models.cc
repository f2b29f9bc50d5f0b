// Store: the model catalogue. Models and their versions (native and derived), roles and
// retirement, and the parameters fitted for a query model against a version (fits).
#include "dualtune/gallery/sqlite_store.h"

#include "dualtune/gallery/store_internal.h"
#include "dualtune/util/error.h"

namespace dualtune::gallery {
namespace {

ModelInfo read_model(sql::Stmt& s) {
  ModelInfo m;
  m.id = s.column_int(0);
  m.name = s.column_text(1);
  m.dim = s.column_int(2);
  m.path = s.column_text(3);
  m.config_hash = s.column_text(4);
  m.role = parse_role(s.column_text(5));
  m.version_id = s.column_int(6);
  return m;
}

const char* kSelectModels =
    "SELECT m.id, m.name, m.dim, m.path, m.config_hash, m.role, v.id FROM models m "
    "JOIN versions v ON v.model_id = m.id AND v.derived_from IS NULL ";

VersionInfo read_version(sql::Stmt& s) {
  VersionInfo v;
  v.id = s.column_int(0);
  v.name = s.column_text(1);
  v.model_id = s.column_int(2);
  v.dim = s.column_int(3);
  v.derived_from = s.column_is_null(4) ? 0 : s.column_int(4);
  v.transform = s.column_text(5);
  v.generation = s.column_int(6);
  return v;
}

const char* kSelectVersions = "SELECT id, name, model_id, dim, derived_from, transform, generation FROM versions ";

}  // namespace

const char* role_name(Role r) {
  switch (r) {
    case Role::kDeployed: return "deployed";
    case Role::kRollingOut: return "rolling_out";
    case Role::kRetired: return "retired";
    case Role::kRolledBack: return "rolled_back";
  }
  return "?";
}

Role parse_role(const std::string& s) {
  if (s == "deployed") return Role::kDeployed;
  if (s == "rolling_out") return Role::kRollingOut;
  if (s == "retired") return Role::kRetired;
  if (s == "rolled_back") return Role::kRolledBack;
  DT_THROW("gallery: expected a model role deployed, rolling_out, retired or rolled_back, found '", s, "'");
}

std::vector<ModelInfo> SqliteStore::models() {
  auto s = db_->prepare(std::string(kSelectModels) + "ORDER BY m.id");
  std::vector<ModelInfo> out;
  while (s.step()) out.push_back(read_model(s));
  return out;
}

std::vector<VersionInfo> SqliteStore::versions() {
  auto s = db_->prepare(std::string(kSelectVersions) + "ORDER BY id");
  std::vector<VersionInfo> out;
  while (s.step()) out.push_back(read_version(s));
  return out;
}

ModelInfo SqliteStore::model(const std::string& name) {
  auto s = db_->prepare(std::string(kSelectModels) + "WHERE m.name = ?");
  s.bind(1, name);
  if (s.step()) return read_model(s);
  std::string known;
  for (const auto& m : models()) known += (known.empty() ? "" : ", ") + m.name + " (" + role_name(m.role) + ")";
  DT_THROW("gallery ", dir_, ": no model named '", name, "'; the gallery has ", known.empty() ? "no models" : known);
}

VersionInfo SqliteStore::version(int64_t id) {
  auto s = db_->prepare(std::string(kSelectVersions) + "WHERE id = ?");
  s.bind(1, id);
  DT_CHECK(s.step(), "gallery ", dir_, ": no embedding version with id ", id);
  return read_version(s);
}

ModelInfo SqliteStore::add_model(const std::string& name, int64_t dim, const std::string& path,
                                 const std::string& config_hash, Role role, const HistoryEvent* record) {
  DT_CHECK(!name.empty() && name.find_first_of("@/ \t\n") == std::string::npos,
           "gallery: expected a model name without '@', '/' or spaces, found '", name, "'");
  DT_CHECK(dim > 0, "gallery: model '", name, "': expected an embedding size > 0, found ", dim);
  sql::Transaction t(*db_);
  {
    auto c = db_->prepare("SELECT count(*) FROM versions WHERE name = ?");
    c.bind(1, name);
    c.step();
    DT_CHECK(c.column_int(0) == 0, "gallery ", dir_, ": a model or version named '", name, "' already exists");
  }
  db_->prepare("INSERT INTO models(name, dim, path, config_hash, role, created) VALUES (?, ?, ?, ?, ?, ?)")
      .bind(1, name).bind(2, dim).bind(3, path).bind(4, config_hash).bind(5, std::string(role_name(role)))
      .bind(6, detail::now_utc()).run();
  const int64_t model_id = db_->last_insert_rowid();
  db_->prepare("INSERT INTO versions(name, model_id, dim) VALUES (?, ?, ?)").bind(1, name).bind(2, model_id).bind(3, dim).run();
  if (record) add_history(*record);
  t.commit();
  return model(name);
}

void SqliteStore::set_role(int64_t model_id, Role role) {
  db_->prepare("UPDATE models SET role = ? WHERE id = ?").bind(1, std::string(role_name(role))).bind(2, model_id).run();
}

VersionInfo SqliteStore::add_derived_version(const std::string& name, int64_t model_id, int64_t dim, int64_t derived_from,
                                       const std::string& transform) {
  DT_CHECK(derived_from > 0, "gallery: a derived version needs the version it is derived from");
  db_->prepare("INSERT INTO versions(name, model_id, dim, derived_from, transform) VALUES (?, ?, ?, ?, ?)")
      .bind(1, name).bind(2, model_id).bind(3, dim).bind(4, derived_from).bind(5, transform).run();
  return version(db_->last_insert_rowid());
}

int64_t SqliteStore::retire_model(int64_t model_id, int64_t promote_model_id, const std::vector<int64_t>& drop_versions,
                                  const HistoryEvent* record) {
  sql::Transaction t(*db_);
  set_role(model_id, Role::kRetired);
  if (promote_model_id > 0) set_role(promote_model_id, Role::kDeployed);
  int64_t deleted = 0;
  for (int64_t v : drop_versions) {
    db_->prepare("DELETE FROM embeddings WHERE version_id = ?").bind(1, v).run();
    deleted += db_->changes();
    db_->prepare("UPDATE versions SET generation = generation + 1 WHERE id = ?").bind(1, v).run();
    db_->prepare("DELETE FROM plan_items WHERE version_id = ?").bind(1, v).run();
    db_->prepare("DELETE FROM plans WHERE version_id = ?").bind(1, v).run();
    db_->prepare("DELETE FROM failures WHERE version_id = ?").bind(1, v).run();
    db_->prepare("DELETE FROM claims WHERE version_id = ?").bind(1, v).run();
  }
  if (record) add_history(*record);
  t.commit();
  return deleted;
}

void SqliteStore::save_fit(const std::string& kind, int64_t query_model_id, int64_t version_id, const std::string& params) {
  db_->prepare("INSERT OR REPLACE INTO fits(kind, query_model_id, version_id, params) VALUES (?, ?, ?, ?)")
      .bind(1, kind).bind(2, query_model_id).bind(3, version_id).bind(4, params).run();
}

std::string SqliteStore::load_fit(const std::string& kind, int64_t query_model_id, int64_t version_id) {
  auto s = db_->prepare("SELECT params FROM fits WHERE kind = ? AND query_model_id = ? AND version_id = ?");
  s.bind(1, kind).bind(2, query_model_id).bind(3, version_id);
  return s.step() ? s.column_text(0) : "";
}

}  // namespace dualtune::gallery

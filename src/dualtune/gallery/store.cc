#include "dualtune/gallery/store.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <unordered_map>

#include "dualtune/gallery/fault.h"
#include "dualtune/util/error.h"

namespace fs = std::filesystem;

namespace dualtune::gallery {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "vectors are stored as little-endian float32");

const char* kSchema = R"sql(
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE models (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  dim INTEGER NOT NULL CHECK (dim > 0),
  path TEXT NOT NULL DEFAULT '',
  config_hash TEXT NOT NULL DEFAULT '',
  role TEXT NOT NULL CHECK (role IN ('deployed', 'rolling_out', 'retired')),
  created TEXT NOT NULL);
CREATE TABLE versions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  model_id INTEGER NOT NULL REFERENCES models(id),
  dim INTEGER NOT NULL CHECK (dim > 0),
  derived_from INTEGER REFERENCES versions(id),
  transform TEXT NOT NULL DEFAULT '',
  generation INTEGER NOT NULL DEFAULT 0);
CREATE TABLE sources (id INTEGER PRIMARY KEY AUTOINCREMENT, spec TEXT NOT NULL UNIQUE);
CREATE TABLE items (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  key TEXT NOT NULL UNIQUE,
  label TEXT NOT NULL DEFAULT '',
  cam INTEGER NOT NULL DEFAULT -1,
  source_id INTEGER REFERENCES sources(id));
CREATE TABLE embeddings (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  item_id INTEGER NOT NULL REFERENCES items(id),
  version_id INTEGER NOT NULL REFERENCES versions(id),
  vec BLOB NOT NULL,
  UNIQUE (item_id, version_id));
CREATE INDEX embeddings_by_version ON embeddings(version_id, seq);
CREATE TABLE plans (
  version_id INTEGER PRIMARY KEY REFERENCES versions(id),
  order_name TEXT NOT NULL,
  seed INTEGER NOT NULL,
  batch_size INTEGER NOT NULL CHECK (batch_size > 0),
  planned INTEGER NOT NULL,
  created TEXT NOT NULL);
CREATE TABLE plan_items (
  version_id INTEGER NOT NULL,
  position INTEGER NOT NULL,
  item_id INTEGER NOT NULL,
  PRIMARY KEY (version_id, position)) WITHOUT ROWID;
CREATE TABLE failures (
  version_id INTEGER NOT NULL,
  item_id INTEGER NOT NULL,
  error TEXT NOT NULL,
  PRIMARY KEY (version_id, item_id)) WITHOUT ROWID;
CREATE TABLE fits (
  kind TEXT NOT NULL,
  query_model_id INTEGER NOT NULL,
  version_id INTEGER NOT NULL,
  params TEXT NOT NULL,
  PRIMARY KEY (kind, query_model_id, version_id)) WITHOUT ROWID;
)sql";

std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

std::string random_uuid() {
  std::random_device rd;
  std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^ rd() ^
                      static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  char buf[40];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return buf;
}

void configure(sql::Db& db, bool read_only) {
  db.exec("PRAGMA foreign_keys = ON");
  // FULL: each commit is on disk before it returns (WAL fsync), not only consistent.
  if (!read_only) db.exec("PRAGMA synchronous = FULL");
}

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
  }
  return "?";
}

Role parse_role(const std::string& s) {
  if (s == "deployed") return Role::kDeployed;
  if (s == "rolling_out") return Role::kRollingOut;
  if (s == "retired") return Role::kRetired;
  DT_THROW("gallery: expected a model role deployed, rolling_out or retired, found '", s, "'");
}

std::string Store::db_path(const std::string& dir) { return (fs::path(dir) / "gallery.db").string(); }

Store::Store(std::string dir, std::unique_ptr<sql::Db> db) : dir_(std::move(dir)), db_(std::move(db)) {}

std::unique_ptr<Store> Store::create(const std::string& dir) {
  const std::string path = db_path(dir);
  DT_CHECK(!fs::exists(path), "gallery create: ", dir, " already holds a gallery (", path,
           "); expected a new or empty directory");
  std::error_code ec;
  fs::create_directories(dir, ec);
  DT_CHECK(!ec, "gallery create: cannot create ", dir, ": ", ec.message());
  // Built under a temporary name and renamed: a killed create leaves no half gallery.
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  fs::remove(tmp);
  try {
    {
      sql::Db db(tmp, true, false);
      db.exec("PRAGMA journal_mode = WAL");
      db.exec("PRAGMA application_id = " + std::to_string(kApplicationId));
      sql::Transaction t(db);
      db.exec(kSchema);
      db.prepare("INSERT INTO meta(key, value) VALUES ('uuid', ?)").bind(1, random_uuid()).run();
      db.prepare("INSERT INTO meta(key, value) VALUES ('created', ?)").bind(1, now_utc()).run();
      db.exec("PRAGMA user_version = " + std::to_string(kSchemaVersion));
      t.commit();
    }
    fs::rename(tmp, path);
  } catch (...) {
    fs::remove(tmp);
    fs::remove(tmp + "-wal");
    fs::remove(tmp + "-shm");
    throw;
  }
  return open(dir);
}

std::unique_ptr<Store> Store::open(const std::string& dir, bool read_only) {
  const std::string path = db_path(dir);
  DT_CHECK(fs::is_regular_file(path), "no gallery at ", dir, ": expected the database ", path,
           " (make one with `dualtune gallery create`)");
  auto db = std::make_unique<sql::Db>(path, false, read_only);
  int64_t app = 0, schema = 0;
  try {
    auto s = db->prepare("PRAGMA application_id");
    s.step();
    app = s.column_int(0);
    auto u = db->prepare("PRAGMA user_version");
    u.step();
    schema = u.column_int(0);
  } catch (const Error& e) {
    DT_THROW(path, " is not a dualtune gallery database (corrupt or foreign file): ", e.what());
  }
  char found[32];
  std::snprintf(found, sizeof found, "0x%08llx", static_cast<unsigned long long>(app));
  DT_CHECK(app == kApplicationId, path, " is not a dualtune gallery database: expected SQLite application_id 0x4454474c, "
           "found ", found, " (another application's file)");
  DT_CHECK(schema == kSchemaVersion, path, ": expected gallery schema version ", kSchemaVersion, ", found ", schema,
           " (written by another dualtune version)");
  configure(*db, read_only);
  auto store = std::unique_ptr<Store>(new Store(dir, std::move(db)));
  DT_CHECK(!store->uuid().empty(), path, " is damaged: its meta table has no uuid");
  return store;
}

std::string Store::uuid() {
  auto s = db_->prepare("SELECT value FROM meta WHERE key = 'uuid'");
  return s.step() ? s.column_text(0) : "";
}

int64_t Store::data_version() {
  auto s = db_->prepare("PRAGMA data_version");
  s.step();
  return s.column_int(0);
}

std::string Store::integrity_check() {
  auto s = db_->prepare("PRAGMA quick_check");
  std::string out;
  while (s.step()) out += (out.empty() ? "" : "; ") + s.column_text(0);
  return out;
}

std::vector<ModelInfo> Store::models() {
  auto s = db_->prepare(std::string(kSelectModels) + "ORDER BY m.id");
  std::vector<ModelInfo> out;
  while (s.step()) out.push_back(read_model(s));
  return out;
}

std::vector<VersionInfo> Store::versions() {
  auto s = db_->prepare(std::string(kSelectVersions) + "ORDER BY id");
  std::vector<VersionInfo> out;
  while (s.step()) out.push_back(read_version(s));
  return out;
}

ModelInfo Store::model(const std::string& name) {
  auto s = db_->prepare(std::string(kSelectModels) + "WHERE m.name = ?");
  s.bind(1, name);
  if (s.step()) return read_model(s);
  std::string known;
  for (const auto& m : models()) known += (known.empty() ? "" : ", ") + m.name + " (" + role_name(m.role) + ")";
  DT_THROW("gallery ", dir_, ": no model named '", name, "'; the gallery has ", known.empty() ? "no models" : known);
}

VersionInfo Store::version(int64_t id) {
  auto s = db_->prepare(std::string(kSelectVersions) + "WHERE id = ?");
  s.bind(1, id);
  DT_CHECK(s.step(), "gallery ", dir_, ": no embedding version with id ", id);
  return read_version(s);
}

ModelInfo Store::add_model(const std::string& name, int64_t dim, const std::string& path,
                           const std::string& config_hash, Role role) {
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
      .bind(6, now_utc()).run();
  const int64_t model_id = db_->last_insert_rowid();
  db_->prepare("INSERT INTO versions(name, model_id, dim) VALUES (?, ?, ?)").bind(1, name).bind(2, model_id).bind(3, dim).run();
  t.commit();
  return model(name);
}

void Store::set_role(int64_t model_id, Role role) {
  db_->prepare("UPDATE models SET role = ? WHERE id = ?").bind(1, std::string(role_name(role))).bind(2, model_id).run();
}

VersionInfo Store::add_derived_version(const std::string& name, int64_t model_id, int64_t dim, int64_t derived_from,
                                       const std::string& transform) {
  DT_CHECK(derived_from > 0, "gallery: a derived version needs the version it is derived from");
  db_->prepare("INSERT INTO versions(name, model_id, dim, derived_from, transform) VALUES (?, ?, ?, ?, ?)")
      .bind(1, name).bind(2, model_id).bind(3, dim).bind(4, derived_from).bind(5, transform).run();
  return version(db_->last_insert_rowid());
}

int64_t Store::add_source(const std::string& spec_json) {
  db_->prepare("INSERT OR IGNORE INTO sources(spec) VALUES (?)").bind(1, spec_json).run();
  auto s = db_->prepare("SELECT id FROM sources WHERE spec = ?");
  s.bind(1, spec_json);
  s.step();
  return s.column_int(0);
}

std::string Store::source_spec(int64_t id) {
  auto s = db_->prepare("SELECT spec FROM sources WHERE id = ?");
  s.bind(1, id);
  DT_CHECK(s.step(), "gallery ", dir_, ": no image source with id ", id);
  return s.column_text(0);
}

int64_t Store::item_count() {
  auto s = db_->prepare("SELECT count(*) FROM items");
  s.step();
  return s.column_int(0);
}

std::vector<int64_t> Store::find_keys(const std::vector<std::string>& keys) {
  auto s = db_->prepare("SELECT id FROM items WHERE key = ?");
  std::vector<int64_t> out;
  out.reserve(keys.size());
  sql::Transaction t(*db_, false);  // one read snapshot, and much faster than autocommit per key
  for (const auto& k : keys) {
    s.bind(1, k);
    out.push_back(s.step() ? s.column_int(0) : -1);
    s.reset();
  }
  t.commit();
  return out;
}

namespace {

int64_t insert_vectors(sql::Db& db, const std::vector<int64_t>& ids, const VersionRows& r, const std::string& dir,
                       bool keep_existing) {
  DT_CHECK(r.vectors != nullptr || ids.empty(), "gallery: no vectors given for version ", r.version_id);
  auto ins = db.prepare(std::string("INSERT ") + (keep_existing ? "OR IGNORE " : "") +
                        "INTO embeddings(item_id, version_id, vec) VALUES (?, ?, ?)");
  int64_t stored = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    ins.bind(1, ids[i]).bind(2, r.version_id).bind_blob(3, r.vectors + static_cast<int64_t>(i) * r.dim,
                                                        r.dim * static_cast<int64_t>(sizeof(float)));
    try {
      ins.run();
    } catch (const Error& e) {
      DT_THROW("gallery ", dir, ": cannot store the vector of item ", ids[i], " (version ", r.version_id,
               "): an item has at most one vector per version and vectors are immutable (", e.what(), ")");
    }
    stored += db.changes();
  }
  return stored;
}

void check_rows(sql::Db& db, const VersionRows& r) {
  auto s = db.prepare("SELECT dim FROM versions WHERE id = ?");
  s.bind(1, r.version_id);
  DT_CHECK(s.step(), "gallery: no embedding version with id ", r.version_id);
  DT_CHECK(s.column_int(0) == r.dim, "gallery: version ", r.version_id, " has dimension ", s.column_int(0),
           ", found vectors of dimension ", r.dim);
}

}  // namespace

std::vector<int64_t> Store::add_items(const std::vector<ItemRecord>& items, const std::vector<VersionRows>& rows) {
  DT_CHECK(!rows.empty() || items.empty(), "gallery: an item needs at least one embedding (none given)");
  sql::Transaction t(*db_);
  for (const auto& r : rows) check_rows(*db_, r);
  auto ins = db_->prepare("INSERT INTO items(key, label, cam, source_id) VALUES (?, ?, ?, ?)");
  std::vector<int64_t> ids;
  ids.reserve(items.size());
  for (const auto& it : items) {
    DT_CHECK(!it.key.empty(), "gallery: expected a non-empty item key");
    ins.bind(1, it.key).bind(2, it.label).bind(3, it.cam);
    if (it.source_id > 0) ins.bind(4, it.source_id); else ins.bind_null(4);
    try {
      ins.run();
    } catch (const Error&) {
      DT_THROW("gallery ", dir_, ": cannot add item '", it.key, "': a key must be new (is it already in the gallery?)");
    }
    ids.push_back(db_->last_insert_rowid());
  }
  for (const auto& r : rows) insert_vectors(*db_, ids, r, dir_, false);
  fault_point("before-commit");
  t.commit();
  fault_point("after-commit");
  return ids;
}

int64_t Store::add_vectors(const std::vector<int64_t>& item_ids, const VersionRows& rows,
                           const std::vector<std::pair<int64_t, std::string>>& failures, bool keep_existing) {
  sql::Transaction t(*db_);
  check_rows(*db_, rows);
  const int64_t stored = insert_vectors(*db_, item_ids, rows, dir_, keep_existing);
  auto f = db_->prepare("INSERT OR REPLACE INTO failures(version_id, item_id, error) VALUES (?, ?, ?)");
  for (const auto& [id, err] : failures) f.bind(1, rows.version_id).bind(2, id).bind(3, err).run();
  fault_point("before-commit");
  t.commit();
  fault_point("after-commit");
  return stored;
}

int64_t Store::count_vectors(int64_t version_id) {
  auto s = db_->prepare("SELECT count(*) FROM embeddings WHERE version_id = ?");
  s.bind(1, version_id);
  s.step();
  return s.column_int(0);
}

std::vector<int64_t> Store::items_with(int64_t version_id) {
  auto s = db_->prepare("SELECT item_id FROM embeddings WHERE version_id = ? ORDER BY item_id");
  s.bind(1, version_id);
  std::vector<int64_t> out;
  while (s.step()) out.push_back(s.column_int(0));
  return out;
}

std::vector<int64_t> Store::items_without(int64_t version_id) {
  auto s = db_->prepare(
      "SELECT id FROM items WHERE id NOT IN (SELECT item_id FROM embeddings WHERE version_id = ?) ORDER BY id");
  s.bind(1, version_id);
  std::vector<int64_t> out;
  while (s.step()) out.push_back(s.column_int(0));
  return out;
}

int64_t Store::max_seq(int64_t version_id) {
  auto s = db_->prepare("SELECT coalesce(max(seq), 0) FROM embeddings WHERE version_id = ?");
  s.bind(1, version_id);
  s.step();
  return s.column_int(0);
}

void Store::for_each_vector(int64_t version_id, int64_t after_seq,
                            const std::function<void(int64_t, int64_t, const float*)>& fn) {
  const int64_t dim = version(version_id).dim;
  auto s = db_->prepare(
      "SELECT seq, item_id, vec FROM embeddings WHERE version_id = ? AND seq > ? ORDER BY seq");
  s.bind(1, version_id).bind(2, after_seq);
  std::vector<float> buf(static_cast<size_t>(dim));
  while (s.step()) {
    int64_t bytes = 0;
    const void* p = s.column_blob(2, &bytes);
    DT_CHECK(bytes == dim * static_cast<int64_t>(sizeof(float)), "gallery ", dir_, ": the vector of item ",
             s.column_int(1), " (version ", version_id, ") has ", bytes, " bytes, expected ", dim * 4,
             " (corrupt database)");
    std::memcpy(buf.data(), p, static_cast<size_t>(bytes));  // SQLite blobs need not be float-aligned
    fn(s.column_int(0), s.column_int(1), buf.data());
  }
}

std::vector<float> Store::vectors_of(int64_t version_id, const std::vector<int64_t>& item_ids,
                                     std::vector<uint8_t>& has) {
  const int64_t dim = version(version_id).dim;
  std::vector<float> out(item_ids.size() * static_cast<size_t>(dim), 0.f);
  has.assign(item_ids.size(), 0);
  auto s = db_->prepare("SELECT vec FROM embeddings WHERE item_id = ? AND version_id = ?");
  sql::Transaction t(*db_, false);
  for (size_t i = 0; i < item_ids.size(); ++i) {
    s.bind(1, item_ids[i]).bind(2, version_id);
    if (s.step()) {
      int64_t bytes = 0;
      const void* p = s.column_blob(0, &bytes);
      DT_CHECK(bytes == dim * 4, "gallery ", dir_, ": the vector of item ", item_ids[i], " has ", bytes,
               " bytes, expected ", dim * 4, " (corrupt database)");
      std::memcpy(out.data() + i * static_cast<size_t>(dim), p, static_cast<size_t>(bytes));
      has[i] = 1;
    }
    s.reset();
  }
  t.commit();
  return out;
}

namespace {
ItemRow read_item(sql::Stmt& s) {
  ItemRow r;
  r.id = s.column_int(0);
  r.record.key = s.column_text(1);
  r.record.label = s.column_text(2);
  r.record.cam = s.column_int(3);
  r.record.source_id = s.column_is_null(4) ? 0 : s.column_int(4);
  return r;
}
}  // namespace

std::vector<ItemRow> Store::items() {
  auto s = db_->prepare("SELECT id, key, label, cam, source_id FROM items ORDER BY id");
  std::vector<ItemRow> out;
  while (s.step()) out.push_back(read_item(s));
  return out;
}

std::vector<ItemRow> Store::items(const std::vector<int64_t>& ids) {
  auto s = db_->prepare("SELECT id, key, label, cam, source_id FROM items WHERE id = ?");
  std::vector<ItemRow> out;
  out.reserve(ids.size());
  sql::Transaction t(*db_, false);
  for (int64_t id : ids) {
    s.bind(1, id);
    DT_CHECK(s.step(), "gallery ", dir_, ": no item with id ", id);
    out.push_back(read_item(s));
    s.reset();
  }
  t.commit();
  return out;
}

std::vector<ItemRow> Store::items_page(int64_t offset, int64_t limit) {
  auto s = db_->prepare("SELECT id, key, label, cam, source_id FROM items ORDER BY id LIMIT ? OFFSET ?");
  s.bind(1, limit).bind(2, offset);
  std::vector<ItemRow> out;
  while (s.step()) out.push_back(read_item(s));
  return out;
}

std::vector<std::vector<int64_t>> Store::item_versions(const std::vector<int64_t>& ids) {
  auto s = db_->prepare("SELECT version_id FROM embeddings WHERE item_id = ? ORDER BY version_id");
  std::vector<std::vector<int64_t>> out(ids.size());
  sql::Transaction t(*db_, false);
  for (size_t i = 0; i < ids.size(); ++i) {
    s.bind(1, ids[i]);
    while (s.step()) out[i].push_back(s.column_int(0));
    s.reset();
  }
  t.commit();
  return out;
}

int64_t Store::retire_model(int64_t model_id, int64_t promote_model_id, const std::vector<int64_t>& drop_versions) {
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
  }
  t.commit();
  return deleted;
}

std::tuple<int64_t, int64_t, int64_t> Store::plan_counts(int64_t version_id) {
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

void Store::save_plan(const Plan& plan) {
  sql::Transaction t(*db_);
  db_->prepare("DELETE FROM plan_items WHERE version_id = ?").bind(1, plan.version_id).run();
  db_->prepare("INSERT OR REPLACE INTO plans(version_id, order_name, seed, batch_size, planned, created) "
               "VALUES (?, ?, ?, ?, ?, ?)")
      .bind(1, plan.version_id).bind(2, plan.order).bind(3, static_cast<int64_t>(plan.seed))
      .bind(4, plan.batch_size).bind(5, static_cast<int64_t>(plan.items.size())).bind(6, now_utc()).run();
  auto ins = db_->prepare("INSERT INTO plan_items(version_id, position, item_id) VALUES (?, ?, ?)");
  for (size_t p = 0; p < plan.items.size(); ++p)
    ins.bind(1, plan.version_id).bind(2, static_cast<int64_t>(p)).bind(3, plan.items[p]).run();
  t.commit();
}

bool Store::load_plan(int64_t version_id, Plan& plan) {
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

std::vector<std::pair<int64_t, std::string>> Store::failures(int64_t version_id) {
  auto s = db_->prepare("SELECT item_id, error FROM failures WHERE version_id = ? ORDER BY item_id");
  s.bind(1, version_id);
  std::vector<std::pair<int64_t, std::string>> out;
  while (s.step()) out.emplace_back(s.column_int(0), s.column_text(1));
  return out;
}

void Store::clear_failures(int64_t version_id) {
  db_->prepare("DELETE FROM failures WHERE version_id = ?").bind(1, version_id).run();
}

void Store::save_fit(const std::string& kind, int64_t query_model_id, int64_t version_id, const std::string& params) {
  db_->prepare("INSERT OR REPLACE INTO fits(kind, query_model_id, version_id, params) VALUES (?, ?, ?, ?)")
      .bind(1, kind).bind(2, query_model_id).bind(3, version_id).bind(4, params).run();
}

std::string Store::load_fit(const std::string& kind, int64_t query_model_id, int64_t version_id) {
  auto s = db_->prepare("SELECT params FROM fits WHERE kind = ? AND query_model_id = ? AND version_id = ?");
  s.bind(1, kind).bind(2, query_model_id).bind(3, version_id);
  return s.step() ? s.column_text(0) : "";
}

}  // namespace dualtune::gallery

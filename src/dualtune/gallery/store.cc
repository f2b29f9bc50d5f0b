// SqliteStore: the database file itself. The schema (below, version kSchemaVersion),
// creating a gallery database and opening one (checked to be a dualtune gallery of this
// schema), whole-database facts (uuid, data version, integrity), transactions and the
// backfill lock. The tables' reads and writes
// are in store_models.cc (models, versions, fits), store_items.cc (sources, items,
// vectors) and store_plans.cc (backfill plans and failures).
#include "dualtune/gallery/sqlite_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <random>

#include "dualtune/gallery/store_internal.h"
#include "dualtune/util/error.h"

namespace fs = std::filesystem;

namespace dualtune::gallery {
namespace {

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

}  // namespace

namespace detail {

std::string random_uuid() {
  std::random_device rd;
  std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^ rd() ^
                      static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  char buf[40];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return buf;
}

}  // namespace detail

namespace {

void configure(sql::Db& db, bool read_only) {
  db.exec("PRAGMA foreign_keys = ON");
  // FULL: each commit is on disk before it returns (WAL fsync), not only consistent.
  if (!read_only) db.exec("PRAGMA synchronous = FULL");
}

}  // namespace

namespace detail {

std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

}  // namespace detail

std::string Store::db_path(const std::string& dir) { return (fs::path(dir) / "gallery.db").string(); }

SqliteStore::SqliteStore(std::string dir, std::unique_ptr<sql::Db> db) : Store(std::move(dir)), db_(std::move(db)) {}

std::unique_ptr<SqliteStore> SqliteStore::create(const std::string& dir) {
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
      db.prepare("INSERT INTO meta(key, value) VALUES ('uuid', ?)").bind(1, detail::random_uuid()).run();
      db.prepare("INSERT INTO meta(key, value) VALUES ('created', ?)").bind(1, detail::now_utc()).run();
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

std::unique_ptr<SqliteStore> SqliteStore::open(const std::string& dir, bool read_only) {
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
  if (!read_only) detail::upgrade_lifecycle_schema(*db);
  if (!read_only) detail::upgrade_claims_schema(*db);
  configure(*db, read_only);
  auto store = std::unique_ptr<SqliteStore>(new SqliteStore(dir, std::move(db)));
  DT_CHECK(!store->uuid().empty(), path, " is damaged: its meta table has no uuid");
  return store;
}

std::string SqliteStore::uuid() {
  auto s = db_->prepare("SELECT value FROM meta WHERE key = 'uuid'");
  return s.step() ? s.column_text(0) : "";
}

int64_t SqliteStore::data_version() {
  auto s = db_->prepare("PRAGMA data_version");
  return detail::int_value(s);
}

std::string SqliteStore::cache_dir() const { return dir_; }

namespace {

class SqliteTransaction final : public Store::Transaction {
 public:
  SqliteTransaction(sql::Db& db, bool write) : t_(db, write) {}
  void commit() override { t_.commit(); }

 private:
  sql::Transaction t_;
};

/// An exclusive flock on DIR/backfill.lock (released by the kernel if the process dies);
/// the file holds the holder's pid for the message of the next one.
class FileLock final : public Store::Lock {
 public:
  explicit FileLock(const std::string& dir) {
    const std::string path = (fs::path(dir) / "backfill.lock").string();
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
    DT_CHECK(fd_ >= 0, "gallery backfill: cannot open the lock file ", path);
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      char buf[32] = {0};
      const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
      ::close(fd_);
      DT_THROW("gallery ", dir, ": another backfill is running on this gallery (process ", n > 0 ? buf : "?",
               "); expected none: one backfill at a time");
    }
    const std::string pid = std::to_string(::getpid());
    if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, pid.data(), pid.size(), 0);
  }
  ~FileLock() override {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }

 private:
  int fd_ = -1;
};

}  // namespace

std::unique_ptr<Store::Transaction> SqliteStore::transaction(bool write) {
  return std::make_unique<SqliteTransaction>(*db_, write);
}

std::unique_ptr<Store::Lock> SqliteStore::backfill_lock() { return std::make_unique<FileLock>(dir_); }

std::string SqliteStore::integrity_check() {
  auto s = db_->prepare("PRAGMA quick_check");
  std::string out;
  while (s.step()) out += (out.empty() ? "" : "; ") + s.column_text(0);
  return out;
}

}  // namespace dualtune::gallery

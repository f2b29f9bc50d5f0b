// PgStore: the database itself. The schema (below, version kSchemaVersion, the same
// tables as the SQLite store's), creating a gallery in a database and opening one
// (checked to be a dualtune gallery of this schema), transactions, the backfill lock and
// whole-database facts (uuid, write sequence, integrity).
#include "dualtune/gallery/pg_store.h"

#include <unistd.h>

#include "dualtune/gallery/store_internal.h"
#include "dualtune/util/error.h"

namespace dualtune::gallery {
namespace {

constexpr const char* kApplication = "dualtune-gallery";
/// The advisory lock key of "a backfill runs on this gallery" (one gallery a database).
constexpr int64_t kBackfillLockKey = 0x4454474c;
/// The NOTIFY channel of committed writes (one gallery a database).
constexpr const char* kChannel = "dualtune_gallery_write";

// bigint everywhere an SQLite INTEGER is; vectors out of line and uncompressed
// (STORAGE EXTERNAL: float32 bytes do not compress, trying costs CPU on every write).
const char* kSchema = R"sql(
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE models (
  id BIGSERIAL PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  dim BIGINT NOT NULL CHECK (dim > 0),
  path TEXT NOT NULL DEFAULT '',
  config_hash TEXT NOT NULL DEFAULT '',
  role TEXT NOT NULL CHECK (role IN ('deployed', 'rolling_out', 'retired', 'rolled_back')),
  created TEXT NOT NULL);
CREATE TABLE versions (
  id BIGSERIAL PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  model_id BIGINT NOT NULL REFERENCES models(id),
  dim BIGINT NOT NULL CHECK (dim > 0),
  derived_from BIGINT REFERENCES versions(id),
  transform TEXT NOT NULL DEFAULT '',
  generation BIGINT NOT NULL DEFAULT 0);
CREATE TABLE sources (id BIGSERIAL PRIMARY KEY, spec TEXT NOT NULL UNIQUE);
CREATE TABLE items (
  id BIGSERIAL PRIMARY KEY,
  key TEXT NOT NULL UNIQUE,
  label TEXT NOT NULL DEFAULT '',
  cam BIGINT NOT NULL DEFAULT -1,
  source_id BIGINT REFERENCES sources(id));
CREATE TABLE embeddings (
  seq BIGSERIAL PRIMARY KEY,
  item_id BIGINT NOT NULL REFERENCES items(id),
  version_id BIGINT NOT NULL REFERENCES versions(id),
  vec BYTEA NOT NULL,
  UNIQUE (item_id, version_id));
ALTER TABLE embeddings ALTER COLUMN vec SET STORAGE EXTERNAL;
CREATE INDEX embeddings_by_version ON embeddings(version_id, seq);
CREATE TABLE plans (
  version_id BIGINT PRIMARY KEY REFERENCES versions(id),
  order_name TEXT NOT NULL,
  seed BIGINT NOT NULL,
  batch_size BIGINT NOT NULL CHECK (batch_size > 0),
  planned BIGINT NOT NULL,
  created TEXT NOT NULL);
CREATE TABLE plan_items (
  version_id BIGINT NOT NULL,
  position BIGINT NOT NULL,
  item_id BIGINT NOT NULL,
  PRIMARY KEY (version_id, position));
CREATE TABLE failures (
  version_id BIGINT NOT NULL,
  item_id BIGINT NOT NULL,
  error TEXT NOT NULL,
  PRIMARY KEY (version_id, item_id));
CREATE TABLE fits (
  kind TEXT NOT NULL,
  query_model_id BIGINT NOT NULL,
  version_id BIGINT NOT NULL,
  params TEXT NOT NULL,
  PRIMARY KEY (kind, query_model_id, version_id));
CREATE TABLE history (
  id BIGSERIAL PRIMARY KEY,
  time TEXT NOT NULL,
  event TEXT NOT NULL CHECK (event IN ('rollout', 'rollback', 'retire')),
  model TEXT NOT NULL,
  detail TEXT NOT NULL);
)sql";

// Batch claims of the many-writers backfill (store.h, pg_store_claims.cc); also created at
// the first writable open of a gallery made before them.
const char* kClaimsTable = R"sql(
CREATE TABLE IF NOT EXISTS claims (
  version_id BIGINT NOT NULL,
  batch BIGINT NOT NULL,
  done BOOLEAN NOT NULL DEFAULT false,
  claimed_by TEXT,
  lease_expires TIMESTAMPTZ,
  PRIMARY KEY (version_id, batch));
)sql";

bool has_meta(pg::Conn& c) {
  return c.exec("SELECT to_regclass('meta') IS NOT NULL").get_text(0, 0) == "t";
}

std::string meta_value(pg::Conn& c, const std::string& key) {
  auto r = c.exec("SELECT value FROM meta WHERE key = $1", pg::Params().add(key));
  return r.rows() ? r.get_text(0, 0) : "";
}

/// A second connection holding the backfill advisory lock.
class AdvisoryLock final : public PgSessionLock {
 public:
  AdvisoryLock(const std::string& url, const std::string& shown) : PgSessionLock(url) {
    // The holder's pid, for the message of the next one.
    conn_.exec("SET application_name = 'dualtune backfill, process " + std::to_string(::getpid()) + "'");
    auto r = conn_.exec("SELECT pg_try_advisory_lock($1)", pg::Params().add(kBackfillLockKey));
    if (r.get_text(0, 0) != "t") {
      auto h = conn_.exec(
          "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
          "WHERE l.locktype = 'advisory' AND l.granted AND l.objid = $1 AND l.database = "
          "(SELECT oid FROM pg_database WHERE datname = current_database())",
          pg::Params().add(kBackfillLockKey));
      DT_THROW("gallery ", shown, ": another backfill is running on this gallery (", h.rows() ? h.get_text(0, 0) : "?",
               "); expected none: one backfill at a time");
    }
  }
};

}  // namespace

PgSessionLock::~PgSessionLock() {
  try {
    conn_.try_exec("SELECT pg_advisory_unlock_all()", pg::Params());
  } catch (...) {  // a destructor: the server releases it with the session anyway
  }
}

PgStore::PgStore(std::string url, std::unique_ptr<pg::Conn> conn, bool read_only)
    : Store(pg::mask_url(url)), url_(std::move(url)), conn_(std::move(conn)), read_only_(read_only) {}

std::unique_ptr<PgStore> PgStore::create(const std::string& url) {
  {
    pg::Conn c(url);
    DT_CHECK(!has_meta(c), "gallery create: ", c.shown_url(), " already holds a gallery (its meta table exists); "
             "expected a database without one");
    // Transactional DDL: a failed or killed create leaves no table behind.
    c.exec("BEGIN");
    if (!c.try_exec(std::string(kSchema) + kClaimsTable, {})) {
      const std::string why = c.last_error();
      c.exec("ROLLBACK");
      DT_THROW("gallery create: ", c.shown_url(), ": cannot create the gallery's tables: ", why,
               " (expected a database without tables of the same names, and the right to create tables)");
    }
    auto meta = [&](const std::string& k, const std::string& v) {
      c.exec("INSERT INTO meta(key, value) VALUES ($1, $2)", pg::Params().add(k).add(v));
    };
    meta("uuid", detail::random_uuid());
    meta("created", detail::now_utc());
    meta("application", kApplication);
    meta("schema_version", std::to_string(kSchemaVersion));
    meta("write_seq", "0");
    c.exec("COMMIT");
  }
  return open(url);
}

std::unique_ptr<PgStore> PgStore::open(const std::string& url, bool read_only) {
  auto c = std::make_unique<pg::Conn>(url);
  const std::string& shown = c->shown_url();
  DT_CHECK(has_meta(*c), "no gallery at ", shown, ": the database has no dualtune gallery tables (make one with "
           "`dualtune gallery create ", shown, "`)");
  const std::string app = meta_value(*c, "application"), schema = meta_value(*c, "schema_version");
  DT_CHECK(app == kApplication, shown, " is not a dualtune gallery database: expected meta application '", kApplication,
           "', found '", app, "' (another application's tables)");
  DT_CHECK(schema == std::to_string(kSchemaVersion), shown, ": expected gallery schema version ", kSchemaVersion,
           ", found ", schema.empty() ? "none" : schema, " (written by another dualtune version)");
  if (read_only) c->set_session("SET default_transaction_read_only = on");
  else if (c->exec("SELECT to_regclass('claims') IS NULL").get_text(0, 0) == "t") c->exec(kClaimsTable);
  auto store = std::unique_ptr<PgStore>(new PgStore(url, std::move(c), read_only));
  DT_CHECK(!store->uuid().empty(), shown, " is damaged: its meta table has no uuid");
  return store;
}

// --- transactions -----------------------------------------------------------------------

PgStore::Tx::Tx(PgStore& s, bool write) : s_(s) {
  if (s_.depth_ > 0) {
    DT_CHECK(!write || s_.depth_write_, "gallery ", s_.dir_, ": a write inside a read snapshot (internal error)");
    ++s_.depth_;
    return;
  }
  outer_ = true;
  if (write) {
    DT_CHECK(!s_.read_only_, "gallery ", s_.dir_, ": opened read-only; expected a writable gallery for this command");
    s_.conn_->exec("BEGIN");
    try {
      // Takes the row's lock until COMMIT: writers run one at a time (pg_store.h). The
      // NOTIFY is queued with the transaction: listeners get it at COMMIT, never for a
      // rolled-back write (one round trip for both statements).
      s_.conn_->exec(std::string("UPDATE meta SET value = (value::bigint + 1)::text WHERE key = 'write_seq'; NOTIFY ") +
                     kChannel);
    } catch (...) {
      s_.conn_->try_exec("ROLLBACK", {});
      throw;
    }
  } else {
    s_.conn_->exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  }
  s_.depth_ = 1;
  s_.depth_write_ = write;
}

PgStore::Tx::~Tx() {
  if (!outer_) {
    --s_.depth_;
    return;
  }
  if (!done_) s_.conn_->try_exec("ROLLBACK", {});
  s_.depth_ = 0;
}

void PgStore::Tx::commit() {
  if (!outer_) return;
  s_.conn_->exec("COMMIT");
  done_ = true;
}

std::unique_ptr<Store::Transaction> PgStore::transaction(bool write) { return std::make_unique<Tx>(*this, write); }

std::unique_ptr<Store::Lock> PgStore::backfill_lock() { return std::make_unique<AdvisoryLock>(url_, dir_); }

namespace {
/// A connection of its own that LISTENs to the write channel.
class PgChangeFeed final : public Store::ChangeFeed {
 public:
  explicit PgChangeFeed(const std::string& url) : conn_(url) { conn_.exec(std::string("LISTEN ") + kChannel); }
  bool wait(int timeout_ms) override { return conn_.wait_notifications(timeout_ms) > 0; }

 private:
  pg::Conn conn_;
};
}  // namespace

std::unique_ptr<Store::ChangeFeed> PgStore::change_feed() { return std::make_unique<PgChangeFeed>(url_); }

// --- whole-database facts ---------------------------------------------------------------

std::string PgStore::cache_dir() const { return ""; }

std::string PgStore::uuid() { return meta_value(*conn_, "uuid"); }

int64_t PgStore::data_version() {
  auto r = conn_->exec("SELECT value::bigint FROM meta WHERE key = 'write_seq'");
  return r.rows() ? r.get_int(0, 0) : 0;
}

std::string PgStore::integrity_check() {
  Tx t(*this, false);
  std::string out;
  auto add = [&out](const std::string& s) { out += (out.empty() ? "" : "; ") + s; };
  if (meta_value(*conn_, "schema_version") != std::to_string(kSchemaVersion)) add("meta: wrong schema_version");
  if (meta_value(*conn_, "uuid").empty()) add("meta: no uuid");
  const int64_t bad_vec = conn_->exec("SELECT count(*) FROM embeddings e JOIN versions v ON v.id = e.version_id "
                                      "WHERE length(e.vec) != 4 * v.dim").get_int(0, 0);
  if (bad_vec) add(std::to_string(bad_vec) + " vectors whose size is not 4 × their version's dim");
  const int64_t bad_plans = conn_->exec("SELECT count(*) FROM plans p WHERE p.planned != "
                                        "(SELECT count(*) FROM plan_items i WHERE i.version_id = p.version_id)")
                                .get_int(0, 0);
  if (bad_plans) add(std::to_string(bad_plans) + " backfill plans whose item list does not match their count");
  t.commit();
  return out.empty() ? "ok" : out;
}

}  // namespace dualtune::gallery

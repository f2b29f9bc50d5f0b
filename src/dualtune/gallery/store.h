#pragma once
// The gallery's source of truth, behind one interface with two implementations:
//   SqliteStore (sqlite_store.h)  the embedded default: DIR/gallery.db, one file.
//   PgStore     (pg_store.h)      a PostgreSQL database named by a postgresql:// URL.
// Both keep the same schema, the same invariants and the same behaviour, and one test
// suite (tests/store/) runs against both. FAISS indexes (vector_index.h) are caches
// derived from the store. Every write below is one transaction, so a process killed at
// any instant leaves either all of a call's rows or none of them.
//
// Schema (version kSchemaVersion; the SQLite file keeps it in PRAGMA user_version and is
// marked by PRAGMA application_id, PostgreSQL in meta rows 'schema_version' and
// 'application'):
//   meta(key, value)                      uuid, created
//   models(id, name, dim, path, config_hash, role, created)
//   versions(id, name, model_id, dim, derived_from, transform, generation)
//   sources(id, spec)                     where images live: JSON (data::DatasetSpec
//                                         fields, or {"format":"files"}: the key is a path)
//   items(id, key UNIQUE, label, cam, source_id)
//   embeddings(seq, item_id, version_id, vec)   vec = dim float32 little-endian, as the
//                                         model produced it (SQLite BLOB, PostgreSQL
//                                         bytea); UNIQUE(item_id, version_id); seq orders
//                                         writes, so a cache holding seq <= S tops up with
//                                         seq > S
//   plans(version_id, order_name, seed, batch_size, planned, created)
//   plan_items(version_id, position, item_id)   the backfill order, fixed once planned
//   failures(version_id, item_id, error)  items a backfill skipped (not retried)
//   fits(kind, query_model_id, version_id, params)   fitted parameters (JSON), e.g. the
//                                         score calibration and the order predictor
//   claims(version_id, batch, done, claimed_by, lease_expires)   one row per batch of
//                                         the version's plan (written with it): which
//                                         worker holds the batch until when (database
//                                         clock), and whether its vectors are committed
//                                         (store_claims.cc, pg_store_claims.cc)
//   history(id, time, event, model, detail)   the lifecycle: rollouts (with their
//                                         compatibility gate), rollbacks, retirements;
//                                         detail = JSON (history_json.h gives its fields)
// models.role is one of 'deployed', 'rolling_out', 'retired', 'rolled_back'. SQLite
// galleries made before the history table and the rolled_back role get both at their
// first writable open (store_history.cc: the models table is rebuilt with the wider
// CHECK, the rows kept as they are); opened read-only they read as having no history.
// PostgreSQL galleries have both from their creation.
// Vectors are immutable once written: a different model is a different version.
//
// Adding a method: declare it pure virtual here, implement it in SqliteStore (store*.cc)
// and PgStore (pg_store*.cc), and add its contract to tests/store/test_store_contract.cc
// so that both run it.
//
// Threading: a Store is one connection and is NOT safe for concurrent use; the Gallery
// serialises access with its own mutexes. Several processes may open the same gallery;
// the database serialises their writers.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "dualtune/gallery/types.h"
#include "dualtune/util/error.h"

namespace dualtune::gallery {

inline constexpr int kSchemaVersion = 1;

/// Thrown by a store whose database server cannot be reached (refused, or the connection
/// was lost: the server is down or restarting). The message names the server (password
/// masked) and libpq's reason. The transaction in flight is rolled back by the server,
/// and session state (advisory locks) is gone. The store reconnects at its next call, so
/// a caller may retry later; `dualtune serve` answers 503 (docs/API.md), a claiming
/// backfill worker opens the store again and takes its rank's lock again.
struct StoreUnreachable : Error {
  using Error::Error;
};
/// PRAGMA application_id of an SQLite gallery database ("DTGL").
inline constexpr int32_t kApplicationId = 0x4454474c;

/// Vectors of one version for some items, for one write.
struct VersionRows {
  int64_t version_id = 0;
  int64_t dim = 0;
  const float* vectors = nullptr;  ///< n × dim, row i for the i-th item of the call
};

/// A backfill plan: the order in which items get their embedding of a version.
struct Plan {
  int64_t version_id = 0;
  std::string order;       ///< order name (order.h)
  uint64_t seed = 0;
  int64_t batch_size = 0;  ///< fixed with the plan: batch b is positions [b·B, (b+1)·B)
  std::vector<int64_t> items;  ///< item ids, position order
};

/// A batch of a plan handed to one backfill worker (Store::claim_batch).
struct BatchClaim {
  int64_t batch = -1;            ///< the claimed batch; -1 when none could be claimed
  std::vector<int64_t> items;    ///< its items still pending (no vector, no failure), plan order
  int64_t open = 0;              ///< batches of the plan not done yet (the claimed one included)
  bool has_claims = false;       ///< the plan has its claim rows (false: no plan yet)
};

/// One item's stored fields (Store::items).
struct ItemRow {
  int64_t id = 0;
  ItemRecord record;
};

class Store {
 public:
  /// What a gallery is called on the command line: a directory (SQLite) or a
  /// postgresql://USER@HOST:PORT/DATABASE URL (PostgreSQL, also postgres://).
  static bool is_url(const std::string& where);
  /// The name to print: the directory, or the URL with its password masked.
  static std::string display_name(const std::string& where);
  /// DIR/gallery.db (SQLite galleries)
  static std::string db_path(const std::string& dir);
  /// Creates a new, empty gallery: DIR (if needed) and its database, or the schema in
  /// the URL's database. Fails when it already holds one.
  static std::unique_ptr<Store> create(const std::string& where);
  /// Opens an existing gallery. Throws naming the file or server when it is missing, not
  /// a gallery, of another schema version, unreachable or refuses the credentials.
  static std::unique_ptr<Store> open(const std::string& where, bool read_only = false);

  virtual ~Store() = default;
  /// The gallery's name for messages (display_name: never a password).
  const std::string& dir() const { return dir_; }
  /// Directory for local files derived from the store (index caches, the backfill lock):
  /// the gallery directory (SQLite), "" for PostgreSQL (caches live in memory and are
  /// rebuilt from the server; nothing local to go stale).
  virtual std::string cache_dir() const = 0;
  virtual std::string uuid() = 0;
  /// Changes whenever another connection commits (SQLite: PRAGMA data_version;
  /// PostgreSQL: the write sequence every write transaction bumps). A cache that saw
  /// value V and reads V again has seen every committed write.
  virtual int64_t data_version() = 0;
  /// "ok" or the findings (SQLite: PRAGMA quick_check; PostgreSQL: schema version, vector
  /// sizes and plan counts).
  virtual std::string integrity_check() = 0;

  /// Groups several calls into one transaction (write) or one read snapshot; rolled back
  /// by the destructor unless committed. Calls inside join it.
  class Transaction {
   public:
    virtual ~Transaction() = default;
    virtual void commit() = 0;
  };
  virtual std::unique_ptr<Transaction> transaction(bool write) = 0;
  /// Held while a backfill runs: one backfill at a time per gallery (SQLite: flock of
  /// DIR/backfill.lock; PostgreSQL: an advisory lock), released when the process dies.
  /// Throws naming the holder when another backfill holds it.
  class Lock {
   public:
    virtual ~Lock() = default;
    /// Whether the lock is still held. A lock kept by a server session (PostgreSQL's
    /// advisory locks) is gone when its connection dropped, even if the connection has
    /// reconnected since; a file lock is held until released.
    virtual bool held() { return true; }
  };
  virtual std::unique_ptr<Lock> backfill_lock() = 0;
  /// Announcements of commits made through any connection, so that a reader need not ask
  /// data_version() at every search (Gallery's OpenOptions::refresh_ms). PostgreSQL: every
  /// write transaction runs NOTIFY, delivered at its COMMIT (dropped on ROLLBACK), and a
  /// feed is a second connection that LISTENs. Stores without announcements return null.
  class ChangeFeed {
   public:
    virtual ~ChangeFeed() = default;
    /// Waits at most timeout_ms for announcements; true when at least one arrived (all
    /// pending ones are consumed). Throws StoreUnreachable when the connection is lost:
    /// announcements made until a new feed listens are missed.
    virtual bool wait(int timeout_ms) = 0;
  };
  virtual std::unique_ptr<ChangeFeed> change_feed() { return nullptr; }

  // --- models and versions -------------------------------------------------------
  virtual std::vector<ModelInfo> models() = 0;
  virtual std::vector<VersionInfo> versions() = 0;
  /// Throws naming the gallery's models when `name` is not one of them.
  virtual ModelInfo model(const std::string& name) = 0;
  virtual VersionInfo version(int64_t id) = 0;
  /// Registers a model and its native version (one transaction, with `record` appended
  /// to the history when given). Names are unique.
  virtual ModelInfo add_model(const std::string& name, int64_t dim, const std::string& path,
                              const std::string& config_hash, Role role, const HistoryEvent* record = nullptr) = 0;
  virtual void set_role(int64_t model_id, Role role) = 0;
  /// Registers a derived version in model_id's space: vectors mapped from
  /// version `derived_from` by `transform`.
  virtual VersionInfo add_derived_version(const std::string& name, int64_t model_id, int64_t dim,
                                          int64_t derived_from, const std::string& transform) = 0;

  // --- items and vectors ---------------------------------------------------------
  /// Id of the source with this JSON spec, inserted if new.
  virtual int64_t add_source(const std::string& spec_json) = 0;
  virtual std::string source_spec(int64_t id) = 0;
  virtual int64_t item_count() = 0;
  /// Items whose key is in `keys` -> their ids (-1 when absent), in the order of keys.
  virtual std::vector<int64_t> find_keys(const std::vector<std::string>& keys) = 0;
  /// Inserts items and their vectors of each given version in ONE transaction (all or
  /// none). Keys must be new (callers check with find_keys and say which are not).
  /// Returns the new item ids, in order.
  virtual std::vector<int64_t> add_items(const std::vector<ItemRecord>& items,
                                         const std::vector<VersionRows>& rows) = 0;
  /// Inserts vectors of one version for existing items, in ONE transaction, together with
  /// `failures` (item id, error) of the same version. An item that already has a vector
  /// of this version is an error (vectors are immutable), or, with keep_existing, keeps it
  /// (the first write wins; two backfills racing on one item store it once). Returns the
  /// number of vectors stored.
  virtual int64_t add_vectors(const std::vector<int64_t>& item_ids, const VersionRows& rows,
                              const std::vector<std::pair<int64_t, std::string>>& failures = {},
                              bool keep_existing = false) = 0;
  /// Number of items with a vector of the version.
  virtual int64_t count_vectors(int64_t version_id) = 0;
  /// Ids (ascending) of the items with / without a vector of the version.
  virtual std::vector<int64_t> items_with(int64_t version_id) = 0;
  virtual std::vector<int64_t> items_without(int64_t version_id) = 0;
  /// Largest seq of the version's vectors (0 when none).
  virtual int64_t max_seq(int64_t version_id) = 0;
  /// Calls fn(seq, item_id, vector) for every vector of the version with seq > after_seq,
  /// in seq order; vector has the version's dim floats (valid during the call only).
  virtual void for_each_vector(int64_t version_id, int64_t after_seq,
                               const std::function<void(int64_t seq, int64_t item_id, const float* v)>& fn) = 0;
  /// The vectors of the version for `item_ids` (n × dim); has[i] = 0 when item i has none.
  virtual std::vector<float> vectors_of(int64_t version_id, const std::vector<int64_t>& item_ids,
                                        std::vector<uint8_t>& has) = 0;
  /// Every item's fields, id ascending.
  virtual std::vector<ItemRow> items() = 0;
  /// Fields of the given items (same order); throws on an unknown id.
  virtual std::vector<ItemRow> items(const std::vector<int64_t>& ids) = 0;
  /// Items in id order, skipping the first `offset`, at most `limit` of them.
  virtual std::vector<ItemRow> items_page(int64_t offset, int64_t limit) = 0;
  /// For each item id, the ids of the versions it has a vector of (ascending).
  virtual std::vector<std::vector<int64_t>> item_versions(const std::vector<int64_t>& ids) = 0;
  /// Retires a model in ONE transaction: its role becomes retired, `promote` (0: none)
  /// becomes deployed, and every vector of `drop_versions` is deleted (their generations
  /// bumped, their plans and failures dropped), with `record` appended to the history
  /// when given. Returns the vectors deleted.
  virtual int64_t retire_model(int64_t model_id, int64_t promote_model_id, const std::vector<int64_t>& drop_versions,
                               const HistoryEvent* record = nullptr) = 0;

  // --- backfill plans -------------------------------------------------------------
  /// Stores the plan of plan.version_id, replacing any earlier one (one transaction).
  virtual void save_plan(const Plan& plan) = 0;
  /// The plan of the version; false when there is none.
  virtual bool load_plan(int64_t version_id, Plan& plan) = 0;
  /// (planned, embedded, failed) counts of the version's plan; all 0 without a plan.
  virtual std::tuple<int64_t, int64_t, int64_t> plan_counts(int64_t version_id) = 0;
  /// Failures recorded for the version: (item id, error), id ascending.
  virtual std::vector<std::pair<int64_t, std::string>> failures(int64_t version_id) = 0;
  /// Forgets the failures of the version (they are retried by the next backfill).
  virtual void clear_failures(int64_t version_id) = 0;

  // --- batch claims: many backfill writers (store_claims.cc, pg_store_claims.cc) ---
  // Each batch b of a version's plan has a claims row; save_plan writes them (all not
  // done, unclaimed). A worker claims the first batch that is not done and not held under
  // an unexpired lease, embeds it, and commits its vectors together with finish_claim in
  // one write transaction, which marks it done only while the worker still holds it. A
  // worker that dies leaves its batch to the next claim after the lease expires. Leases
  // are measured by the database's clock (PostgreSQL now(); SQLite's, one machine).
  /// Held by a backfill worker of the claims protocol: shares the backfill lock with the
  /// other workers (a single-writer backfill_lock() excludes them all) and holds `rank`
  /// exclusively. Throws naming the rank when another worker of the same rank holds it,
  /// or naming the holder when a single-writer backfill runs.
  virtual std::unique_ptr<Lock> worker_lock(int rank) = 0;
  /// Writes the claim rows of the version's stored plan when it has none (a plan saved by
  /// a version without claims); one transaction. No-op without a plan.
  virtual void open_claims(int64_t version_id) = 0;
  /// Claims one batch for `worker` until now + lease_seconds, in one statement: the
  /// lowest batch not done whose claim is free or expired. See BatchClaim.
  virtual BatchClaim claim_batch(int64_t version_id, const std::string& worker, double lease_seconds) = 0;
  /// Extends `worker`'s claim of the batch to now + lease_seconds (a worker embedding a
  /// batch for longer than its lease renews it, so the batch is not taken from a live
  /// worker). False when the batch is done or no longer `worker`'s. One statement.
  virtual bool renew_claim(int64_t version_id, int64_t batch, const std::string& worker, double lease_seconds) = 0;
  /// Inside the caller's write transaction: marks the batch done if `worker` still holds
  /// its claim (and keeps the row locked until COMMIT). False when another worker took it
  /// over or the plan was replaced: the caller must then roll back its vectors.
  virtual bool finish_claim(int64_t version_id, int64_t batch, const std::string& worker) = 0;
  /// Frees the batches `worker` claimed and did not finish (a worker stopping early or
  /// reconnecting); returns how many.
  virtual int64_t release_claims(int64_t version_id, const std::string& worker) = 0;
  /// (batch, done, claimed_by) of every claim row of the version, batch ascending.
  virtual std::vector<std::tuple<int64_t, bool, std::string>> claims(int64_t version_id) = 0;

  // --- fitted parameters (JSON text) ----------------------------------------------
  virtual void save_fit(const std::string& kind, int64_t query_model_id, int64_t version_id,
                        const std::string& params) = 0;
  /// "" when absent.
  virtual std::string load_fit(const std::string& kind, int64_t query_model_id, int64_t version_id) = 0;

  // --- lifecycle history (SQLite: store_history.cc; PostgreSQL: pg_store_history.cc) --
  // The history table (store.h's header comment); history.detail is the JSON object of
  // history_json.h's history_detail_json.
  /// Appends one event (time = now; e.id and e.time are ignored). Runs inside the
  /// caller's transaction when one is open, so the event commits with the change it records.
  virtual void add_history(const HistoryEvent& e) = 0;
  /// Every event, oldest first (ORDER BY id).
  virtual std::vector<HistoryEvent> history() = 0;
  /// Sets the model's role and appends `record`, in ONE transaction (a rollback; a
  /// rolled-back model rolled out again).
  virtual void set_role_recorded(int64_t model_id, Role role, const HistoryEvent& record) = 0;

 protected:
  explicit Store(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

}  // namespace dualtune::gallery

#pragma once
// The PostgreSQL store (store.h): a gallery in a database named by a URL
// (postgresql://USER[:PASSWORD]@HOST:PORT/DATABASE?..., libpq's URI form; a password
// is better kept in PGPASSWORD or ~/.pgpass than in the URL). Same schema, invariants and
// behaviour as the SQLite store, with PostgreSQL types (bigserial ids, bytea vectors of
// float32 little-endian, as SQLite). The schema version and the application marker are
// rows of meta ('schema_version', 'application').
//
// Writers: every write transaction starts by bumping meta's 'write_seq' row, which takes
// that row's lock until COMMIT. Writers therefore run one at a time, as SQLite's BEGIN
// IMMEDIATE makes them, and this is what keeps embeddings.seq in commit order: a cache
// that holds every vector with seq <= S never misses a later commit with a smaller seq.
// The same counter is data_version(): it changes with every committed write, and the
// same transaction NOTIFYs channel dualtune_gallery_write, which change_feed() LISTENs to.
//
// Implementation, one job a file: pg_store.cc (schema, create, open, transactions, the
// backfill lock, whole-database facts), pg_store_items.cc (sources, items, vectors),
// pg_store_models.cc (models, versions, fits, backfill plans, failures),
// pg_store_history.cc (the lifecycle history), pg_store_claims.cc (batch claims of many
// backfill writers, their locks).
#include <memory>
#include <string>

#include "dualtune/gallery/pg.h"
#include "dualtune/gallery/store.h"

namespace dualtune::gallery {

/// A lock held by a server session of its own (advisory locks) on a connection opened
/// for it. Destruction releases it at once (pg_advisory_unlock_all), not when the server
/// notices the closed connection (a backend ends asynchronously), so the next taker in
/// this or another process finds it free; a dying process drops the session and the lock.
class PgSessionLock : public Store::Lock {
 protected:
  explicit PgSessionLock(const std::string& url) : conn_(url) {}
  ~PgSessionLock() override;
  pg::Conn conn_;
};

class PgStore final : public Store {
 public:
  /// Creates the gallery's tables in the URL's (existing) database; fails when it
  /// already holds a gallery or tables of the same names.
  static std::unique_ptr<PgStore> create(const std::string& url);
  /// Opens the gallery in the URL's database. Throws naming the masked URL when the
  /// server is unreachable, refuses the credentials, or the database holds no gallery,
  /// another application's tables or another schema version.
  static std::unique_ptr<PgStore> open(const std::string& url, bool read_only = false);

  /// The connection itself (tests inspect rows directly).
  pg::Conn& conn() { return *conn_; }

  std::string cache_dir() const override;
  std::string uuid() override;
  int64_t data_version() override;
  std::string integrity_check() override;
  std::unique_ptr<Transaction> transaction(bool write) override;
  std::unique_ptr<Lock> backfill_lock() override;
  /// LISTEN on a second connection to the NOTIFY every write transaction sends.
  std::unique_ptr<ChangeFeed> change_feed() override;
  std::vector<ModelInfo> models() override;
  std::vector<VersionInfo> versions() override;
  ModelInfo model(const std::string& name) override;
  VersionInfo version(int64_t id) override;
  ModelInfo add_model(const std::string& name, int64_t dim, const std::string& path, const std::string& config_hash, Role role, const HistoryEvent* record = nullptr) override;
  void set_role(int64_t model_id, Role role) override;
  VersionInfo add_derived_version(const std::string& name, int64_t model_id, int64_t dim, int64_t derived_from, const std::string& transform) override;
  int64_t add_source(const std::string& spec_json) override;
  std::string source_spec(int64_t id) override;
  int64_t item_count() override;
  std::vector<int64_t> find_keys(const std::vector<std::string>& keys) override;
  std::vector<int64_t> add_items(const std::vector<ItemRecord>& items, const std::vector<VersionRows>& rows) override;
  int64_t add_vectors(const std::vector<int64_t>& item_ids, const VersionRows& rows, const std::vector<std::pair<int64_t, std::string>>& failures, bool keep_existing) override;
  int64_t count_vectors(int64_t version_id) override;
  std::vector<int64_t> items_with(int64_t version_id) override;
  std::vector<int64_t> items_without(int64_t version_id) override;
  int64_t max_seq(int64_t version_id) override;
  void for_each_vector(int64_t version_id, int64_t after_seq, const std::function<void(int64_t seq, int64_t item_id, const float* v)>& fn) override;
  std::vector<float> vectors_of(int64_t version_id, const std::vector<int64_t>& item_ids, std::vector<uint8_t>& has) override;
  std::vector<ItemRow> items() override;
  std::vector<ItemRow> items(const std::vector<int64_t>& ids) override;
  std::vector<ItemRow> items_page(int64_t offset, int64_t limit) override;
  std::vector<std::vector<int64_t>> item_versions(const std::vector<int64_t>& ids) override;
  int64_t retire_model(int64_t model_id, int64_t promote_model_id, const std::vector<int64_t>& drop_versions, const HistoryEvent* record = nullptr) override;
  void save_plan(const Plan& plan) override;
  bool load_plan(int64_t version_id, Plan& plan) override;
  std::tuple<int64_t, int64_t, int64_t> plan_counts(int64_t version_id) override;
  std::vector<std::pair<int64_t, std::string>> failures(int64_t version_id) override;
  void clear_failures(int64_t version_id) override;
  std::unique_ptr<Lock> worker_lock(int rank) override;
  void open_claims(int64_t version_id) override;
  BatchClaim claim_batch(int64_t version_id, const std::string& worker, double lease_seconds) override;
  bool renew_claim(int64_t version_id, int64_t batch, const std::string& worker, double lease_seconds) override;
  bool finish_claim(int64_t version_id, int64_t batch, const std::string& worker) override;
  int64_t release_claims(int64_t version_id, const std::string& worker) override;
  std::vector<std::tuple<int64_t, bool, std::string>> claims(int64_t version_id) override;
  void save_fit(const std::string& kind, int64_t query_model_id, int64_t version_id, const std::string& params) override;
  std::string load_fit(const std::string& kind, int64_t query_model_id, int64_t version_id) override;
  void add_history(const HistoryEvent& e) override;
  std::vector<HistoryEvent> history() override;
  void set_role_recorded(int64_t model_id, Role role, const HistoryEvent& record) override;

  /// RAII transaction with nesting: the outermost one runs BEGIN/COMMIT, inner ones join
  /// it. A write transaction first bumps write_seq (see above); a read one is a single
  /// REPEATABLE READ snapshot.
  class Tx;

 private:
  PgStore(std::string url, std::unique_ptr<pg::Conn> conn, bool read_only);
  /// Vectors for items (already checked: new for this version), sent with COPY.
  void copy_vectors(const std::vector<int64_t>& ids, const VersionRows& rows, const std::vector<size_t>& which);
  void check_rows(const VersionRows& rows);
  /// Replaces the version's claim rows by one unclaimed row per batch of its stored plan
  /// (inside the caller's write transaction; pg_store_claims.cc).
  void write_claims(int64_t version_id);

  std::string url_;  ///< with its password: the backfill lock opens a second connection
  std::unique_ptr<pg::Conn> conn_;
  bool read_only_ = false;
  int depth_ = 0;          ///< open (nested) transactions
  bool depth_write_ = false;
};

class PgStore::Tx final : public Store::Transaction {
 public:
  Tx(PgStore& s, bool write);
  ~Tx() override;
  void commit() override;

 private:
  PgStore& s_;
  bool outer_ = false, done_ = false;
};

}  // namespace dualtune::gallery

#pragma once
// The SQLite store (store.h): one database file, DIR/gallery.db, in WAL mode (readers
// never block the writer and see whole transactions only). Implementation, one job a
// file: store.cc (schema, create, open, whole-database facts), store_models.cc (models,
// versions, fits), store_items.cc (sources, items, vectors), store_plans.cc (backfill
// plans, failures), store_claims.cc (batch claims of many writers), store_history.cc
// (lifecycle history, the rolled_back role's upgrade).
#include <memory>
#include <string>

#include "dualtune/gallery/sqlite.h"
#include "dualtune/gallery/store.h"

namespace dualtune::gallery {

class SqliteStore final : public Store {
 public:
  /// Creates DIR (if needed) and a new, empty gallery database in it; fails when DIR
  /// already holds one.
  static std::unique_ptr<SqliteStore> create(const std::string& dir);
  /// Opens an existing gallery. Throws naming the file when it is missing, not an
  /// SQLite database, another application's database, or of another schema version.
  static std::unique_ptr<SqliteStore> open(const std::string& dir, bool read_only = false);

  /// The connection itself, for tests that inspect the file's rows directly.
  sql::Db& db() { return *db_; }

  std::string cache_dir() const override;
  std::string uuid() override;
  int64_t data_version() override;
  std::string integrity_check() override;
  std::unique_ptr<Transaction> transaction(bool write) override;
  std::unique_ptr<Lock> backfill_lock() override;
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

 private:
  SqliteStore(std::string dir, std::unique_ptr<sql::Db> db);
  std::unique_ptr<sql::Db> db_;
};

}  // namespace dualtune::gallery

#pragma once
// The gallery's source of truth: one SQLite database, DIR/gallery.db, in WAL mode
// (readers never block the writer and see whole transactions only). Every write below
// is one transaction, so a process killed at any instant leaves either all of a call's
// rows or none of them. FAISS indexes (vector_index.h) are caches derived from it.
//
// Schema (version kSchemaVersion, in PRAGMA user_version; PRAGMA application_id marks
// the file as a dualtune gallery):
//   meta(key, value)                      uuid, created
//   models(id, name, dim, path, config_hash, role, created)
//   versions(id, name, model_id, dim, derived_from, transform, generation)
//   sources(id, spec)                     where images live: JSON (data::DatasetSpec
//                                         fields, or {"format":"files"}: the key is a path)
//   items(id, key UNIQUE, label, cam, source_id)
//   embeddings(seq, item_id, version_id, vec)   vec = dim float32 little-endian, as the
//                                         model produced it; UNIQUE(item_id, version_id);
//                                         seq (AUTOINCREMENT) orders writes, so a cache
//                                         holding seq <= S tops up with seq > S
//   plans(version_id, order_name, seed, batch_size, planned, created)
//   plan_items(version_id, position, item_id)   the backfill order, fixed once planned
//   failures(version_id, item_id, error)  items a backfill skipped (not retried)
//   fits(kind, query_model_id, version_id, params)   fitted parameters (JSON), e.g. the
//                                         score calibration and the order predictor
//   history(id, time, event, model, detail)   the lifecycle: rollouts (with their
//                                         compatibility gate), rollbacks, retirements;
//                                         detail = JSON (store_history.cc gives its fields)
// models.role is one of 'deployed', 'rolling_out', 'retired', 'rolled_back'. Galleries
// made before the history table and the rolled_back role get both at their first
// writable open (store_history.cc: the models table is rebuilt with the wider CHECK, the
// rows kept as they are); opened read-only they read as having no history.
// Vectors are immutable once written: a different model is a different version.
//
// Implementation, one job a file: store.cc (schema, create, open), store_models.cc
// (models, versions, fits), store_items.cc (sources, items, vectors), store_plans.cc
// (backfill plans, failures), store_history.cc (lifecycle history, rolled-back role).
//
// Threading: a Store is one SQLite connection and is NOT safe for concurrent use; the
// Gallery serialises access with its own mutexes. Several processes may open the same
// gallery; SQLite's locks serialise their writers.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "dualtune/gallery/sqlite.h"
#include "dualtune/gallery/types.h"

namespace dualtune::gallery {

inline constexpr int kSchemaVersion = 1;
/// PRAGMA application_id of a gallery database ("DTGL").
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

/// One item's stored fields (Store::items).
struct ItemRow {
  int64_t id = 0;
  ItemRecord record;
};

class Store {
 public:
  /// DIR/gallery.db
  static std::string db_path(const std::string& dir);
  /// Creates DIR (if needed) and a new, empty gallery database in it; fails when DIR
  /// already holds one.
  static std::unique_ptr<Store> create(const std::string& dir);
  /// Opens an existing gallery. Throws naming the file when it is missing, not an
  /// SQLite database, another application's database, or of another schema version.
  static std::unique_ptr<Store> open(const std::string& dir, bool read_only = false);

  const std::string& dir() const { return dir_; }
  std::string uuid();
  /// Changes whenever another connection commits (PRAGMA data_version).
  int64_t data_version();
  /// PRAGMA quick_check: "ok" or SQLite's findings.
  std::string integrity_check();

  // --- models and versions -------------------------------------------------------
  std::vector<ModelInfo> models();
  std::vector<VersionInfo> versions();
  /// Throws naming the gallery's models when `name` is not one of them.
  ModelInfo model(const std::string& name);
  VersionInfo version(int64_t id);
  /// Registers a model and its native version (one transaction, with `record` appended
  /// to the history when given). Names are unique.
  ModelInfo add_model(const std::string& name, int64_t dim, const std::string& path, const std::string& config_hash,
                      Role role, const HistoryEvent* record = nullptr);
  void set_role(int64_t model_id, Role role);
  /// Registers a derived version in model_id's space: vectors mapped from
  /// version `derived_from` by `transform`.
  VersionInfo add_derived_version(const std::string& name, int64_t model_id, int64_t dim, int64_t derived_from,
                                  const std::string& transform);

  // --- items and vectors ---------------------------------------------------------
  /// Id of the source with this JSON spec, inserted if new.
  int64_t add_source(const std::string& spec_json);
  std::string source_spec(int64_t id);
  int64_t item_count();
  /// Items whose key is in `keys` -> their ids (-1 when absent), in the order of keys.
  std::vector<int64_t> find_keys(const std::vector<std::string>& keys);
  /// Inserts items and their vectors of each given version in ONE transaction (all or
  /// none). Keys must be new (callers check with find_keys and say which are not).
  /// Returns the new item ids, in order.
  std::vector<int64_t> add_items(const std::vector<ItemRecord>& items, const std::vector<VersionRows>& rows);
  /// Inserts vectors of one version for existing items, in ONE transaction, together with
  /// `failures` (item id, error) of the same version. An item that already has a vector
  /// of this version is an error (vectors are immutable), or, with keep_existing, keeps it
  /// (the first write wins; two backfills racing on one item store it once). Returns the
  /// number of vectors stored.
  int64_t add_vectors(const std::vector<int64_t>& item_ids, const VersionRows& rows,
                      const std::vector<std::pair<int64_t, std::string>>& failures = {}, bool keep_existing = false);
  /// Number of items with a vector of the version.
  int64_t count_vectors(int64_t version_id);
  /// Ids (ascending) of the items with / without a vector of the version.
  std::vector<int64_t> items_with(int64_t version_id);
  std::vector<int64_t> items_without(int64_t version_id);
  /// Largest seq of the version's vectors (0 when none).
  int64_t max_seq(int64_t version_id);
  /// Calls fn(seq, item_id, vector) for every vector of the version with seq > after_seq,
  /// in seq order; vector has the version's dim floats (valid during the call only).
  void for_each_vector(int64_t version_id, int64_t after_seq,
                       const std::function<void(int64_t seq, int64_t item_id, const float* v)>& fn);
  /// The vectors of the version for `item_ids` (n × dim); has[i] = 0 when item i has none.
  std::vector<float> vectors_of(int64_t version_id, const std::vector<int64_t>& item_ids, std::vector<uint8_t>& has);
  /// Every item's fields, id ascending.
  std::vector<ItemRow> items();
  /// Fields of the given items (same order); throws on an unknown id.
  std::vector<ItemRow> items(const std::vector<int64_t>& ids);
  /// Items in id order, skipping the first `offset`, at most `limit` of them.
  std::vector<ItemRow> items_page(int64_t offset, int64_t limit);
  /// For each item id, the ids of the versions it has a vector of (ascending).
  std::vector<std::vector<int64_t>> item_versions(const std::vector<int64_t>& ids);
  /// Retires a model in ONE transaction: its role becomes retired, `promote` (0: none)
  /// becomes deployed, and every vector of `drop_versions` is deleted (their generations
  /// bumped, their plans and failures dropped), with `record` appended to the history
  /// when given. Returns the vectors deleted.
  int64_t retire_model(int64_t model_id, int64_t promote_model_id, const std::vector<int64_t>& drop_versions,
                       const HistoryEvent* record = nullptr);

  // --- backfill plans -------------------------------------------------------------
  /// Stores the plan of plan.version_id, replacing any earlier one (one transaction).
  void save_plan(const Plan& plan);
  /// The plan of the version; false when there is none.
  bool load_plan(int64_t version_id, Plan& plan);
  /// (planned, embedded, failed) counts of the version's plan; all 0 without a plan.
  std::tuple<int64_t, int64_t, int64_t> plan_counts(int64_t version_id);
  /// Failures recorded for the version: (item id, error), id ascending.
  std::vector<std::pair<int64_t, std::string>> failures(int64_t version_id);
  /// Forgets the failures of the version (they are retried by the next backfill).
  void clear_failures(int64_t version_id);

  // --- fitted parameters (JSON text) ----------------------------------------------
  void save_fit(const std::string& kind, int64_t query_model_id, int64_t version_id, const std::string& params);
  /// "" when absent.
  std::string load_fit(const std::string& kind, int64_t query_model_id, int64_t version_id);

  // --- lifecycle history (store_history.cc) ----------------------------------------
  // SQL to port to another store: the history table
  //   history(id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, event TEXT NOT NULL
  //           CHECK (event IN ('rollout','rollback','retire')), model TEXT NOT NULL,
  //           detail TEXT NOT NULL)
  // and 'rolled_back' among models.role's allowed values.
  /// Appends one event (time = now; e.id and e.time are ignored). Runs inside the
  /// caller's transaction when one is open, so the event commits with the change it records.
  void add_history(const HistoryEvent& e);
  /// Every event, oldest first.
  std::vector<HistoryEvent> history();
  /// Sets the model's role and appends `record`, in ONE transaction (a rollback; a
  /// rolled-back model rolled out again).
  void set_role_recorded(int64_t model_id, Role role, const HistoryEvent& record);

  sql::Db& db() { return *db_; }

 private:
  Store(std::string dir, std::unique_ptr<sql::Db> db);
  std::string dir_;
  std::unique_ptr<sql::Db> db_;
};

}  // namespace dualtune::gallery

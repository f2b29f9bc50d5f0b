#pragma once
// Gallery: a versioned embedding store (store.h) with mixed-version search (merge.h),
// progressive backfill (orders in order.h) and its caches (vector_index.h). One object
// per open gallery directory; the CLI (`dualtune gallery ...`) and `dualtune serve` use
// this class and nothing below it.
//
// Threading contract:
//   - search(), status(), items(), models() may be called from any number of threads at
//     once, also while another thread runs add_images / import_vectors / backfill /
//     commit_batch on the same object. A search sees every write committed before it
//     started (by this object or, after refresh, by another process), never a partial one.
//   - Writers (add_images, import_vectors, rollout, retire, fit_transition, plan_backfill,
//     backfill, commit_batch) are serialised internally: calling two at once from two
//     threads is safe, they run one after the other. At most one backfill runs per object;
//     status().backfill.running says whether it is running.
//   - backfill() stops at a batch boundary when *cancel becomes true (e.g. from a SIGTERM
//     handler that only stores to a std::atomic<bool>), after max_items or max_seconds,
//     and can be resumed later by another call (in this or another process) with exactly
//     the result of an uninterrupted run: the plan (order, batch grid) is stored, and each
//     batch is committed in one transaction.
//   - Several processes may open the same gallery. SQLite serialises their writes; a
//     reader process picks up other processes' commits at its next search (refresh()).
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "dualtune/gallery/curve.h"
#include "dualtune/gallery/image_embedder.h"
#include "dualtune/gallery/merge.h"
#include "dualtune/gallery/order.h"
#include "dualtune/gallery/store.h"
#include "dualtune/gallery/types.h"
#include "dualtune/gallery/vector_index.h"

namespace dualtune::gallery {

/// A model to register (create, rollout).
struct ModelRegistration {
  std::string name;
  int64_t dim = 0;
  std::string path;         ///< "" when only its embeddings will be imported
  std::string config_hash;  ///< model_fingerprint(path); "" = not checked
};

struct OpenOptions {
  bool read_only = false;   ///< no writes (search, status); caches are still written when the directory allows
  bool write_cache = true;  ///< write rebuilt index caches to DIR/index/
  /// Receives one line per noteworthy event (a stale cache rebuilt). Default: ignored.
  std::function<void(const std::string&)> notice;
};

struct SearchOptions {
  int64_t k = 10;
  std::optional<Merge> merge;  ///< unset: resolve_merge() (the default merge)
  std::string index = "flat";  ///< flat (exact) | ivf | hnsw (approximate, cached)
  AnnOptions ann;
};

/// nq × k results, best first (merge key descending, ties by item id).
struct SearchResult {
  int64_t nq = 0, k = 0;
  Merge merge = Merge::kRaw;
  std::vector<int64_t> ids;       ///< item ids, -1 when the gallery has fewer than k items
  std::vector<float> scores;      ///< cosine similarity of query and item on the compared components
  std::vector<float> keys;        ///< the merged ranking value (= score for raw)
  std::vector<int32_t> versions;  ///< version id that scored the item (-1 for missing entries)
};

/// Outcome of add_images / import_vectors.
struct AddReport {
  int64_t added = 0;    ///< new items
  int64_t vectors = 0;  ///< vectors stored
  int64_t skipped = 0;  ///< keys skipped because they were already there (skip_existing)
  std::vector<std::pair<std::string, std::string>> failed;  ///< (key, error): items not added
};

struct BackfillOptions {
  std::string model;            ///< the model whose embeddings are filled in (default: the rolling-out one)
  std::string order;            ///< used when planning: random | uncertainty ("" = uncertainty when fitted, else random)
  uint64_t seed = 0;            ///< random order seed
  int64_t batch_size = 256;     ///< used when planning (a stored plan keeps its own)
  bool replan = false;          ///< re-plan the items still pending with `order` (else the stored plan is kept)
  bool retry_failed = false;    ///< forget recorded failures so their items are tried again
  int64_t max_items = 0;        ///< > 0: stop after the batch that reaches this many items in this call
  double max_seconds = 0;       ///< > 0: stop at the first batch boundary after this long
  int rank = 0, world = 1;      ///< this worker embeds the pending batches b with (b-th pending) % world == rank
};

struct BackfillProgress {
  int64_t planned = 0;           ///< items in the plan
  int64_t done = 0;              ///< planned items embedded so far (all runs)
  int64_t failed = 0;            ///< planned items skipped (all runs)
  int64_t this_run = 0;          ///< items handled (embedded or failed) by this call
  double seconds = 0;            ///< since this call started
  double items_per_second = 0;   ///< this call's rate
  double eta_seconds = 0;        ///< remaining / rate (0 when unknown)
};

struct BackfillReport {
  int64_t embedded = 0, failed = 0;  ///< by this call
  int64_t remaining = 0;             ///< planned items neither embedded nor failed
  bool finished = false;             ///< remaining == 0
  bool cancelled = false;            ///< stopped by *cancel
  double seconds = 0;
  std::vector<std::pair<std::string, std::string>> failures;  ///< (key, error) of this call
};

struct TransformOptions {
  std::string model;      ///< the model whose space h maps into (default: the rolling-out one)
  std::string version;    ///< name of the derived version (default "<model>@h")
  std::string transform;  ///< what h is (path and fingerprint), recorded with the version
  int64_t chunk = 4096;   ///< items mapped and committed per transaction
  /// Called with the deployed model (h's source) and the target once both are resolved,
  /// before anything is written: throws to refuse an h made for other models. Must not
  /// call back into the gallery.
  std::function<void(const ModelInfo& from, const ModelInfo& to)> check;
};

struct TransformReport {
  VersionInfo version;       ///< the derived version written
  int64_t transformed = 0;   ///< vectors stored by this call
  int64_t backfilled = 0;    ///< items skipped: they already have the model's own embedding
  int64_t already = 0;       ///< items skipped: they already had a vector of the version
  bool cancelled = false;    ///< stopped by *cancel (a later call continues)
  double seconds = 0;
};

/// h: n stored vectors of the deployed model (n × Do, row-major) -> n × Dn.
using VectorMap = std::function<std::vector<float>(int64_t n, const float* in)>;

/// A batch of the plan still to embed.
struct BackfillBatch {
  int64_t index = 0;               ///< position in the plan's batch grid
  std::vector<ImageRef> items;     ///< pending items of the batch, plan order
};

/// Worker processes embedding shares of a backfill for the writing process
/// (distributed_backfill.h implements it over TCP). Called from the backfill's thread.
class RemoteWorkers {
 public:
  virtual ~RemoteWorkers() = default;
  /// Number of processes including the writer (rank 0).
  virtual int world() const = 0;
  /// Hands worker `rank` (1 <= rank < world) its share and what it embeds with.
  virtual void assign(int rank, const std::vector<BackfillBatch>& share, const ModelInfo& model) = 0;
  /// The next batch a worker embedded: false when none is ready (wait = false), or when
  /// every worker has finished or failed and nothing is queued (wait = true).
  virtual bool next(EmbeddedBatch& out, bool wait) = 0;
  /// Asks the workers to stop (budget reached, cancelled); batches in flight are dropped.
  virtual void stop() = 0;
};

class Gallery {
 public:
  /// Creates a gallery in dir with its deployed model.
  static std::unique_ptr<Gallery> create(const std::string& dir, const ModelRegistration& deployed,
                                         const OpenOptions& options = {});
  static std::unique_ptr<Gallery> open(const std::string& dir, const OpenOptions& options = {});
  ~Gallery();

  const std::string& dir() const { return dir_; }
  GalleryStatus status();
  std::vector<ModelInfo> models();
  /// Throws naming the gallery's models when absent.
  ModelInfo model(const std::string& name);
  /// The model being rolled out, or the deployed one when none is.
  ModelInfo target_model();
  /// Versions a query of `model` is scored against, highest precedence first (types.h).
  std::vector<VersionInfo> precedence(const std::string& model);
  /// Fields of items (keys, labels), same order as ids; -1 ids give an empty row.
  std::vector<ItemRow> items(const std::vector<int64_t>& ids);
  /// A page of items in id order (offset, at most limit rows) and, per row, the ids of
  /// the versions it has a vector of (which items are backfilled).
  std::vector<ItemRow> list_items(int64_t offset, int64_t limit, std::vector<std::vector<int64_t>>* versions = nullptr);
  /// Where the items' images are (key + source spec, as a backfill embeds them); throws
  /// naming the id when an item does not exist.
  std::vector<ImageRef> image_refs(const std::vector<int64_t>& ids);
  /// Source id for a JSON image-source spec (embedder.h), inserted if new.
  int64_t add_source(const std::string& spec_json);

  // --- lifecycle -----------------------------------------------------------------
  /// Registers a new model as rolling out (one at a time).
  ModelInfo rollout(const ModelRegistration& m);
  /// Retires a model: its role becomes retired and its vectors are deleted. Retiring the
  /// deployed model requires a rolling-out model that every item has (it becomes the
  /// deployed one); otherwise it is refused naming the items still missing it.
  void retire(const std::string& model);
  /// Throws when the embedder's fingerprint differs from the one recorded for `model`.
  void check_model(const std::string& model, const ImageEmbedder& embedder);

  // --- writes ----------------------------------------------------------------------
  /// Stores vectors of `model` for items given by key (n × dim). A new key creates the
  /// item (only for the deployed model: every item must be searchable by deployed
  /// queries); a key present without this model's vector gets it; a key that already has
  /// it is a duplicate: an error, or skipped with skip_existing (resuming an import).
  /// A key twice in the input is an error. Committed in chunks of `chunk` items, each
  /// one transaction.
  AddReport import_vectors(const std::string& model, const std::vector<ItemRecord>& items, int64_t dim,
                           const float* vectors, bool skip_existing, int64_t chunk = 10000);
  /// Adds new items from their images, embedded by every model in `embedders` (which
  /// must cover the deployed and rolling-out models), one transaction per batch. Items
  /// whose image is missing or corrupt are reported and skipped. Keys already in the
  /// gallery: an error, or skipped with skip_existing. progress(done, total) per batch.
  AddReport add_images(const std::vector<ItemRecord>& items,
                       const std::vector<std::pair<std::string, ImageEmbedder*>>& embedders, int64_t batch_size,
                       bool skip_existing, const std::function<void(int64_t, int64_t)>& progress = {},
                       const std::atomic<bool>* cancel = nullptr);

  /// Forward transformation of the stored gallery (issue 14, FCT): maps every item's
  /// deployed-model vector through h into the rolling-out model's space and stores it as
  /// a derived version (types.h), which that model's queries then score until the item
  /// is backfilled from its image. No image and no backbone run. Items already
  /// backfilled are skipped, and so are items that have the version (a call stopped by a
  /// kill or *cancel continues where it stopped). One transaction per chunk. The version
  /// records `transform`; a second call with a different h is refused (retire and roll
  /// out again, or use another --version name). Throws when h's output is not n × Dn or
  /// not finite.
  TransformReport transform(const TransformOptions& options, int64_t in_dim, const VectorMap& h,
                            const std::function<void(int64_t done, int64_t total)>& progress = {},
                            const std::atomic<bool>* cancel = nullptr);

  // --- search ----------------------------------------------------------------------
  /// Top-k items for nq queries of `model` (nq × dq, dq must equal the model's dim).
  SearchResult search(const std::string& model, int64_t nq, const float* queries, int64_t dq,
                      const SearchOptions& options = {});
  /// The merge a search uses: `requested`, or the default (calibrated when the model's
  /// calibrations are fitted, else raw; docs/GALLERY.md). Throws for calibrated without a calibration.
  Merge resolve_merge(const std::string& model, std::optional<Merge> requested);
  /// Picks up commits of other processes (search calls it; cheap when nothing changed).
  void refresh();
  /// Writes index caches that fell behind the store (e.g. before a service exits).
  void flush_caches();

  // --- transition fits ---------------------------------------------------------------
  /// Fits, on n training items embedded by the deployed model (old, n × Do) and by the
  /// rolling-out `model` (new, n × Dn): the score calibrations of `model`'s queries against
  /// its own version and the deployed one (needs labels; skipped when labels is null) and
  /// the uncertainty order's discrepancy predictor. Stored in the gallery.
  struct FitReport {
    Calibration cal_new, cal_old;
    DiscrepancyPredictor predictor;
  };
  FitReport fit_transition(const std::string& model, int64_t n, const float* old_vectors, const float* new_vectors,
                           const int64_t* labels);
  /// Stored fits ("" fields when absent).
  std::optional<Calibration> calibration(const std::string& query_model, int64_t version_id);
  std::optional<DiscrepancyPredictor> order_predictor(const std::string& model);

  // --- backfill ------------------------------------------------------------------------
  /// The stored plan of the model (planning it, or extending it with items added since,
  /// when allowed: not read_only). Orders: random | uncertainty (needs fit_transition).
  Plan plan_backfill(const BackfillOptions& options);
  /// The plan's batches that still have items to embed, this worker's share (rank/world).
  std::vector<BackfillBatch> pending_batches(const BackfillOptions& options);
  /// Commits one embedded batch of the model (vectors + failures, one transaction).
  /// Returns the number of vectors stored.
  int64_t commit_batch(const std::string& model, const EmbeddedBatch& batch);
  /// Plans if needed, then embeds the pending batches with `embedder` and commits each.
  /// With `remote` (world W > 1), the pending batches are split W ways: share 0 is
  /// embedded here, shares 1..W-1 by the workers; this thread commits every batch.
  BackfillReport backfill(const BackfillOptions& options, ImageEmbedder& embedder,
                          const std::function<void(const BackfillProgress&)>& progress = {},
                          const std::atomic<bool>* cancel = nullptr, RemoteWorkers* remote = nullptr);
  /// Progress counters of the model's plan.
  BackfillProgress backfill_progress(const std::string& model);

  // --- evaluation ----------------------------------------------------------------------
  /// Gallery items with both the deployed and `model`'s vectors and their labels, as a
  /// curve gallery; queries: `model`'s own vectors of the same items (leave-one-out).
  /// Items without a label get label -1 (junk). ids (optional) receives the item ids in
  /// gallery-index order.
  CurveData curve_data(const std::string& model, std::vector<int64_t>* ids = nullptr);
  /// The stored plan's order as gallery indices of curve_data (items not in the plan follow
  /// in id order).
  std::vector<int64_t> plan_order_indices(const std::string& model, const std::vector<int64_t>& ids);
  /// Quality of `model`'s queries against the gallery as it is now (each item scored by
  /// the first version it has in the model's precedence), one point per merge. Queries
  /// are gallery items' own new-model vectors (nq × model dim, keyed by item key):
  /// leave-one-out, the label is the item's. fraction = share of items with `model`'s vector.
  std::vector<CurvePoint> evaluate_state(const std::string& model, int64_t nq, const float* queries,
                                         const std::vector<std::string>& query_keys, const std::vector<Merge>& merges,
                                         int threads = 0);
  /// The order `name` (random | uncertainty | oracle) of the curve gallery's items.
  std::vector<int64_t> curve_order(const std::string& model, const std::string& name, uint64_t seed,
                                   const CurveData& data, const std::vector<int64_t>& ids);

 private:
  Gallery(std::string dir, std::unique_ptr<Store> store, OpenOptions options);
  struct Slot;
  struct QueryPlan;
  struct Caches;
  void refresh_locked();
  const QueryPlan& query_plan_locked(const std::string& model);
  Merge merge_for(const QueryPlan& plan, std::optional<Merge> requested) const;
  void invalidate_local();
  ModelInfo deployed_locked();

  std::string dir_;
  OpenOptions options_;
  std::unique_ptr<Store> store_;
  mutable std::mutex store_mu_;       ///< the SQLite connection
  mutable std::mutex writer_mu_;      ///< one writer call at a time
  mutable std::shared_mutex cache_mu_;
  std::unique_ptr<Caches> caches_;    ///< indexes, query plans (cache_mu_)
  std::atomic<bool> local_writes_{false};
  std::atomic<bool> backfill_running_{false};
  int64_t data_version_ = -1;         ///< store_mu_
};

}  // namespace dualtune::gallery

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
//   - Several processes may open the same gallery. The database serialises their writes; a
//     reader process picks up other processes' commits at its next search (refresh()):
//     at once with OpenOptions::refresh_ms = 0 (it asks the store at every search), and
//     with refresh_ms > 0 on PostgreSQL as soon as the commit's announcement arrives, at
//     the latest refresh_ms after the commit (freshness.h).
//
// The class is a facade: its parts live in gallery_*.cc, one job each (lifecycle and
// metadata, ingest, transform, query plans and caches, search, fits, backfill, curve
// data), sharing the private pieces of gallery_internal.h. Its options and reports are
// in gallery_types.h.
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
#include "dualtune/gallery/gallery_types.h"
#include "dualtune/gallery/vector_index.h"

namespace dualtune::gallery {

namespace detail {
struct QueryPlan;
struct Caches;
class Freshness;
}  // namespace detail

class Gallery {
 public:
  /// Creates a gallery with its deployed model: in a directory (SQLite) or in the database
  /// of a postgresql:// URL (store.h).
  static std::unique_ptr<Gallery> create(const std::string& dir, const ModelRegistration& deployed,
                                         const OpenOptions& options = {});
  static std::unique_ptr<Gallery> open(const std::string& dir, const OpenOptions& options = {});
  ~Gallery();

  /// The gallery's name for messages: its directory, or its URL with the password masked.
  const std::string& dir() const { return dir_; }
  /// The name it was opened with (what open() needs to open it again; may hold a password).
  const std::string& location() const { return location_; }
  /// Where files derived from the store live (index caches, uploads): the gallery
  /// directory, or "" for a PostgreSQL gallery (caches in memory, rebuilt from the server).
  const std::string& cache_dir() const { return cache_dir_; }
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
  /// Registers a new model as rolling out (one at a time), recording the rollout and its
  /// compatibility gate in the history (the gate is measured and judged by the caller:
  /// app/rollout_gate.h; the default records an ungated rollout). A model that was rolled
  /// back rolls out again under its name and resumes: its embeddings, plan and fits were
  /// kept (the registration must match its dim and fingerprint).
  ModelInfo rollout(const ModelRegistration& m, const RolloutGate& gate = {});
  /// Returns the gallery to its deployed model (gallery_lifecycle.cc): the rolling-out
  /// model becomes rolled_back — its queries are refused, queries without a model use the
  /// deployed one, a backfill of it (in this or another process) stops at its next batch —
  /// and its embeddings, plan and fits are kept for a later rollout. Recorded in the
  /// history. Throws saying why when nothing is rolling out, e.g. after the retire that
  /// made it the deployed model (the old embeddings are gone: nothing to return to).
  ModelInfo rollback();
  /// Retires a model: its role becomes retired and its vectors are deleted. Retiring the
  /// deployed model requires a rolling-out model that every item has (it becomes the
  /// deployed one); otherwise it is refused naming the items still missing it. Recorded
  /// in the history.
  void retire(const std::string& model);
  /// The lifecycle history, oldest first (also in status()).
  std::vector<HistoryEvent> history();
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

  /// Forward transformation of the stored gallery (FCT): maps every item's
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
  /// Asks the store's write sequence unless OpenOptions::refresh_ms says it need not yet
  /// (freshness.h). A sequence that went back (the database was restored from an older
  /// copy) drops every cache: they are rebuilt from the store.
  void refresh();
  /// Whether commits reach this object by announcement (refresh_ms > 0 on a store with
  /// a change feed), and how many announcements arrived.
  bool listening() const;
  int64_t announcements() const;
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
  /// Returns the number of vectors stored, or -1 (nothing stored) when the model is no
  /// longer rolling out (rolled back or retired since the batch was handed out).
  int64_t commit_batch(const std::string& model, const EmbeddedBatch& batch);
  /// Plans if needed, then embeds the pending batches with `embedder` and commits each.
  /// With `remote` (world W > 1), the pending batches are split W ways: share 0 is
  /// embedded here, shares 1..W-1 by the workers; this thread commits every batch.
  BackfillReport backfill(const BackfillOptions& options, ImageEmbedder& embedder,
                          const std::function<void(const BackfillProgress&)>& progress = {},
                          const std::atomic<bool>* cancel = nullptr, RemoteWorkers* remote = nullptr);
  /// One worker of a backfill with many writers (store.h, batch claims): any number of
  /// processes, on any machines that reach the store, each running this with its own
  /// rank. Rank 0 plans (as backfill() does; options.rank/world give this worker's rank);
  /// the others wait for its plan. Then each worker claims a batch under a lease, embeds
  /// it and commits its vectors itself, together with marking the batch done, only while
  /// it still holds the claim; until every batch is done (waiting for batches other
  /// workers hold, which come back when their lease expires). Throws when another worker
  /// has the same rank, when the store's uuid is not options.gallery_uuid, when the
  /// embedder is not the model's. A lost connection is reopened with backoff (bounded by
  /// claim.reconnect_seconds); the batch in flight is released and embedded again. Budget,
  /// cancel and rollback stop it at a batch boundary as in backfill().
  BackfillReport backfill_claimed(const BackfillOptions& options, const ClaimOptions& claim, ImageEmbedder& embedder,
                                  const std::function<void(const BackfillProgress&)>& progress = {},
                                  const std::atomic<bool>* cancel = nullptr);
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
  /// evaluate_state at several states the model's backfill went through: the gallery when
  /// the first backfilled[k] items of its stored plan (items embedded before the plan
  /// first) had the model's vector. Every such item must have it now. One similarity pass
  /// for all states; point k of each merge equals what evaluate_state measured then.
  /// Returns [state][merge].
  std::vector<std::vector<CurvePoint>> evaluate_backfill_states(const std::string& model, int64_t nq,
                                                                const float* queries,
                                                                const std::vector<std::string>& query_keys,
                                                                const std::vector<Merge>& merges,
                                                                const std::vector<int64_t>& backfilled, int threads = 0);
  /// The order `name` (random | uncertainty | oracle) of the curve gallery's items.
  std::vector<int64_t> curve_order(const std::string& model, const std::string& name, uint64_t seed,
                                   const CurveData& data, const std::vector<int64_t>& ids);

 private:
  Gallery(std::string where, std::unique_ptr<Store> store, OpenOptions options);
  void refresh_locked();
  const detail::QueryPlan& query_plan_locked(const std::string& model);
  Merge merge_for(const detail::QueryPlan& plan, std::optional<Merge> requested) const;
  void invalidate_local();
  ModelInfo deployed_locked();
  /// Opens the store again after its connection broke (store_mu_ held).
  void reopen_store_locked();
  /// commit_batch for a claimed batch: also marks it done if `worker` still holds it, in
  /// the same transaction. -1: the model is no longer rolling out; -2: the claim was lost
  /// (nothing stored).
  int64_t commit_claimed(const ModelInfo& model, int64_t batch, const std::string& worker, const EmbeddedBatch& eb);
  /// evaluate_state's problem: the gallery's items with both versions, the queries keyed to
  /// their items, one spec per merge (orders left empty); has_new / ids by gallery index.
  CurveData state_data(const std::string& model, int64_t nq, const float* queries,
                       const std::vector<std::string>& query_keys, const std::vector<Merge>& merges,
                       std::vector<CurveSpec>& specs, std::vector<uint8_t>& has_new, std::vector<int64_t>& ids);

  std::string dir_, location_, cache_dir_;
  OpenOptions options_;
  std::unique_ptr<Store> store_;
  mutable std::mutex store_mu_;       ///< the store's connection
  mutable std::mutex writer_mu_;      ///< one writer call at a time
  mutable std::shared_mutex cache_mu_;
  std::unique_ptr<detail::Caches> caches_;    ///< indexes, query plans (cache_mu_)
  std::atomic<bool> local_writes_{false};
  std::atomic<bool> backfill_running_{false};
  int64_t data_version_ = -1;         ///< store_mu_
  std::unique_ptr<detail::Freshness> freshness_;  ///< null when refresh_ms = 0
};

}  // namespace dualtune::gallery

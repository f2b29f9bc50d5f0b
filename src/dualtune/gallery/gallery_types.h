#pragma once
// What Gallery's calls take and return (gallery.h): registrations, open/search/backfill/
// transform options, and their reports; and the RemoteWorkers interface a distributed
// backfill implements (distributed_backfill.h). Kept apart from the Gallery class so the
// facade's header reads as its API.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dualtune/gallery/image_embedder.h"
#include "dualtune/gallery/merge.h"
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
  /// Searches hold and search only this shard's items (a search process of a sharded
  /// gallery, vector_index.h); the default is every item. Writes are not affected.
  Shard shard;
  /// Freshness of searches (gallery.h, refresh()): 0 asks the store for its write
  /// sequence at every search; > 0 asks only when the store announced a commit
  /// (PostgreSQL LISTEN/NOTIFY) or when refresh_ms passed since the last time it asked,
  /// so a search sees every write committed refresh_ms before it started even when an
  /// announcement is lost. Stores that announce nothing (SQLite, whose data_version is a
  /// local read) keep asking at every search.
  int64_t refresh_ms = 0;
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
  bool rolled_back = false;          ///< stopped because the model stopped rolling out (`gallery rollback`)
  double seconds = 0;
  std::vector<std::pair<std::string, std::string>> failures;  ///< (key, error) of this call
  // Gallery::backfill_claimed only:
  std::vector<int64_t> batches;      ///< batches this worker committed, in commit order
  int64_t lost = 0;                  ///< batches embedded here whose claim another worker had taken over (discarded)
  int64_t reconnects = 0;            ///< times the store connection was opened again
};

/// A backfill worker of the claims protocol (Gallery::backfill_claimed, store.h): any
/// number of processes on any machines that reach the store.
struct ClaimOptions {
  /// Seconds a claimed batch stays this worker's; a worker that dies holding it leaves it
  /// to the next claim after this long. Must exceed one batch's embedding time.
  double lease_seconds = 60;
  /// This worker's name in the claims table (default host:pid:rank:random).
  std::string worker;
  /// The uuid of the gallery the workers are meant for (rank 0 prints it; "" = unchecked).
  std::string gallery_uuid;
  /// Ranks > 0: how long to wait for rank 0's plan.
  double plan_wait_seconds = 60;
  /// How long to keep trying to reconnect after the store connection broke (backoff
  /// 0.25 s doubling, at most 4 s apart) before giving up.
  double reconnect_seconds = 30;
  /// Where the worker says what it does about a lost connection (default: nowhere).
  std::function<void(const std::string&)> log;
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

}  // namespace dualtune::gallery

#pragma once
// Private to Gallery's translation units (gallery_*.cc); nothing outside the gallery
// includes it. The cached query plan of a model (which versions its queries score, which
// rows each version contributes, calibrations, the aligned merge's sample), the caches
// that hold plans and indexes, and small lookups several parts of the Gallery share.
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "dualtune/gallery/gallery.h"
#include "dualtune/util/error.h"

namespace dualtune::gallery::detail {

/// Marks a backfill as running in this process for its scope; refuses a second one.
class BackfillGuard {
 public:
  BackfillGuard(std::atomic<bool>& running, const std::string& dir) : running_(running) {
    bool expected = false;
    DT_CHECK(running_.compare_exchange_strong(expected, true), "gallery ", dir,
             ": a backfill is already running in this process; expected one at a time");
  }
  ~BackfillGuard() { running_.store(false); }
  BackfillGuard(const BackfillGuard&) = delete;
  BackfillGuard& operator=(const BackfillGuard&) = delete;

 private:
  std::atomic<bool>& running_;
};

/// Items of a version sampled for the aligned merge (evenly strided over the shared ones).
inline constexpr int64_t kAlignSample = 1024;

/// One version a model's queries are scored against, with the rows it contributes.
struct Slot {
  VersionInfo version;
  VectorIndex* index = nullptr;
  std::vector<uint8_t> mask;  ///< by position; empty = every row active
  int64_t active = 0;         ///< rows this model's queries see in this version
  std::optional<Calibration> cal;
  /// Merge::kAligned: up to kAlignSample items this slot shares with the last slot (the
  /// deployed version): their normalised vectors here (m × dim) and there (m × base dim).
  int64_t align_m = 0;
  std::vector<float> align_x, align_base_x;
};

struct QueryPlan {
  ModelInfo model;
  std::vector<Slot> slots;
  bool calibrated = false;  ///< every slot has its score calibration
};

struct Caches {
  std::map<std::pair<int64_t, int64_t>, std::unique_ptr<VectorIndex>> flat;  ///< (version id, dim)
  std::map<std::tuple<int64_t, int64_t, std::string>, std::unique_ptr<AnnIndex>> ann;  ///< (version, dim, kind)
  std::map<std::string, QueryPlan> plans;  ///< by query model name
};

/// Forgets the dropped versions: their indexes in memory and in CACHE_DIR/index/ (none
/// when cache_dir is ""), and every query plan (gallery_query_plan.cc). The caller holds
/// the cache lock exclusively.
void drop_versions(Caches& caches, const std::string& cache_dir, const std::vector<VersionInfo>& dropped);

/// The aligned merge's per-query maps of each slot's scores onto the base (last) slot's
/// scale: key = a[slot][query] · score + b[slot][query]. Slots without a fit keep a = 1,
/// b = 0.
struct AlignFit {
  std::vector<std::vector<double>> a, b;
};

/// Fills every slot's align_m / align_x / align_base_x from the items it shares with the
/// plan's last slot (gallery_fit.cc).
void sample_alignment(QueryPlan& plan);
/// Fits the aligned merge's maps for nq queries (nq × dq) on the slots' samples: mean and
/// deviation of the query's scores on the sample matched to those on the base slot
/// (gallery_fit.cc).
AlignFit fit_alignment(const QueryPlan& plan, int64_t nq, int64_t dq, const float* queries);

/// The rolling-out model among `models`, if any (at most one rolls out at a time).
inline std::optional<ModelInfo> rolling_out(const std::vector<ModelInfo>& models) {
  for (const auto& m : models)
    if (m.role == Role::kRollingOut) return m;
  return std::nullopt;
}

/// The rolling-out model a backfill fills in: `name`, or the rolling-out one when "";
/// throws saying why when it is not rolling out (gallery_backfill.cc).
ModelInfo backfill_model(Store& store, const std::string& dir, const std::string& name);
/// Splits an embedded batch of model m into the items to store (ids, their vectors) and
/// the failures (an error, or a non-finite vector); throws when its sizes are not n × dim.
void split_embedded(const ModelInfo& m, const EmbeddedBatch& batch, std::vector<int64_t>& ok, std::vector<float>& vec,
                    std::vector<std::pair<int64_t, std::string>>& failures);

/// Image-source specs by source id, each read from the store once. Source id 0 (no
/// image known) gives "". The caller holds the store's lock while it reads new ids.
class SourceSpecs {
 public:
  explicit SourceSpecs(Store& store) : store_(store) {}
  const std::string& operator()(int64_t source_id) {
    static const std::string kNone;
    if (source_id <= 0) return kNone;
    auto it = specs_.find(source_id);
    if (it == specs_.end()) it = specs_.emplace(source_id, store_.source_spec(source_id)).first;
    return it->second;
  }

 private:
  Store& store_;
  std::map<int64_t, std::string> specs_;
};

}  // namespace dualtune::gallery::detail

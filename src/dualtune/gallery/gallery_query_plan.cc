// Gallery query plans and index caches: which versions a model's queries score and
// which rows each contributes (the plan), the flat and approximate indexes behind them,
// and keeping both in step with the store (refresh, flush, dropped versions).
#include "dualtune/gallery/gallery.h"

#include <algorithm>
#include <filesystem>
#include <iterator>

#include "dualtune/gallery/freshness.h"
#include "dualtune/gallery/gallery_internal.h"
#include "dualtune/util/error.h"

namespace fs = std::filesystem;

namespace dualtune::gallery {

namespace detail {

void drop_versions(Caches& caches, const std::string& cache_dir, const std::vector<VersionInfo>& dropped) {
  for (const auto& v : dropped) {
    for (auto it = caches.flat.begin(); it != caches.flat.end();)
      it = it->first.first == v.id ? caches.flat.erase(it) : std::next(it);
    for (auto it = caches.ann.begin(); it != caches.ann.end();)
      it = std::get<0>(it->first) == v.id ? caches.ann.erase(it) : std::next(it);
    std::error_code ec;
    if (cache_dir.empty()) continue;  // no cache files (PostgreSQL)
    for (const auto& e : fs::directory_iterator(fs::path(cache_dir) / "index", ec))
      if (e.path().filename().string().rfind(v.name + ".d", 0) == 0) fs::remove(e.path(), ec);
  }
  caches.plans.clear();
}

}  // namespace detail

void Gallery::refresh() {
  bool changed = local_writes_.exchange(false);
  if (!changed && freshness_ && !freshness_->due()) return;  // nothing announced, not due yet
  bool restored = false;
  {
    std::lock_guard<std::mutex> lk(store_mu_);
    int64_t dv = 0;
    try {
      dv = store_->data_version();
    } catch (...) {
      if (freshness_) freshness_->mark_stale();
      throw;
    }
    if (dv != data_version_) {
      restored = dv < data_version_;
      data_version_ = dv;
      changed = true;
    }
  }
  if (!changed) return;
  std::unique_lock<std::shared_mutex> cl(cache_mu_);
  if (restored) {
    // The write sequence only grows: a smaller one is another copy of the database (a
    // restored backup), whose rows the caches cannot be checked against.
    caches_->flat.clear();
    caches_->ann.clear();
    caches_->plans.clear();
    return;
  }
  refresh_locked();
}

bool Gallery::listening() const { return freshness_ && freshness_->listening(); }
int64_t Gallery::announcements() const { return freshness_ ? freshness_->announcements() : 0; }

void Gallery::refresh_locked() {
  std::lock_guard<std::mutex> lk(store_mu_);
  auto snapshot = store_->transaction(false);  // every index tops up from one snapshot
  for (auto& [key, idx] : caches_->flat) {
    const VersionInfo v = store_->version(key.first);
    if (v.generation != idx->header().generation) {
      idx = std::make_unique<VectorIndex>(store_->uuid(), v, key.second, options_.shard);
      for (auto it = caches_->ann.begin(); it != caches_->ann.end();)
        it = std::get<0>(it->first) == v.id && std::get<1>(it->first) == key.second ? caches_->ann.erase(it) : std::next(it);
    }
    idx->top_up(*store_);
  }
  for (auto& [key, ann] : caches_->ann) ann->top_up(*caches_->flat.at({std::get<0>(key), std::get<1>(key)}));
  snapshot->commit();
  caches_->plans.clear();  // roles, masks and calibrations are rebuilt at the next search
}

void Gallery::flush_caches() {
  if (cache_dir_.empty()) return;  // caches live in memory only (PostgreSQL)
  std::shared_lock<std::shared_mutex> cl(cache_mu_);
  std::lock_guard<std::mutex> lk(store_mu_);
  for (const auto& [key, idx] : caches_->flat) {
    const std::string path = VectorIndex::cache_path(cache_dir_, store_->version(key.first), key.second, "flat");
    idx->save(path);
  }
}

const detail::QueryPlan& Gallery::query_plan_locked(const std::string& name) {
  auto it = caches_->plans.find(name);
  if (it != caches_->plans.end()) return it->second;
  const ModelInfo m = model(name);
  const auto versions = precedence(m.name);
  detail::QueryPlan plan;
  plan.model = m;
  std::lock_guard<std::mutex> lk(store_mu_);
  for (const auto& v : versions) {
    const int64_t d = std::min(m.dim, v.dim);
    auto& idx = caches_->flat[{v.id, d}];
    if (!idx) {
      std::string notice;
      idx = VectorIndex::open(*store_, v, d, options_.write_cache, &notice, options_.shard);
      if (!notice.empty() && options_.notice) options_.notice(notice);
    }
    detail::Slot s;
    s.version = v;
    s.index = idx.get();
    const std::string cal = store_->load_fit("calibration", m.id, v.id);
    if (!cal.empty()) s.cal = Calibration::from_json(cal);
    plan.slots.push_back(std::move(s));
  }
  // An item is scored by the first slot that holds it: later slots mask it out.
  for (size_t k = 0; k < plan.slots.size(); ++k) {
    detail::Slot& s = plan.slots[k];
    const int64_t n = s.index->size();
    if (k == 0) {
      s.active = n;
      continue;
    }
    s.mask.assign(static_cast<size_t>(n), 1);
    const int64_t* ids = s.index->ids();
    for (int64_t p = 0; p < n; ++p)
      for (size_t e = 0; e < k; ++e)
        if (plan.slots[e].index->position(ids[p]) >= 0) {
          s.mask[static_cast<size_t>(p)] = 0;
          break;
        }
    s.active = std::count(s.mask.begin(), s.mask.end(), uint8_t(1));
  }
  detail::sample_alignment(plan);  // gallery_fit.cc
  plan.calibrated =
      std::all_of(plan.slots.begin(), plan.slots.end(), [](const detail::Slot& x) { return x.cal.has_value(); });
  return caches_->plans.emplace(name, std::move(plan)).first->second;
}

Merge Gallery::merge_for(const detail::QueryPlan& plan, std::optional<Merge> requested) const {
  if (!requested) return plan.calibrated ? default_merge() : Merge::kRaw;
  DT_CHECK(*requested != Merge::kCalibrated || plan.calibrated || plan.slots.size() < 2, "gallery: merge 'calibrated' for '",
           plan.model.name, "' needs its score calibrations (`gallery calibrate --model ", plan.model.name,
           "` with a labelled training set embedded by both models); none is stored. Expected them, or --merge rank|raw|aligned");
  return *requested;
}

Merge Gallery::resolve_merge(const std::string& name, std::optional<Merge> requested) {
  refresh();
  {
    std::shared_lock<std::shared_mutex> cl(cache_mu_);
    auto it = caches_->plans.find(name);
    if (it != caches_->plans.end()) return merge_for(it->second, requested);
  }
  std::unique_lock<std::shared_mutex> cl(cache_mu_);
  return merge_for(query_plan_locked(name), requested);
}

}  // namespace dualtune::gallery

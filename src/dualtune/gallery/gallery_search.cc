// Gallery search: top-k over the versions of a model's query plan (gallery_query_plan.cc).
// Each slot (version) is searched for its own top k over the rows it contributes, then
// the slots' candidates are merged per query on the merge key (merge.h).
#include "dualtune/gallery/gallery.h"

#include "dualtune/eval/similarity.h"
#include "dualtune/gallery/gallery_internal.h"
#include "dualtune/gallery/topk.h"
#include "dualtune/util/error.h"

namespace dualtune::gallery {
namespace {

/// Whether every slot of the plan has its approximate index of kind `index` open.
bool ann_ready(const detail::Caches& caches, const detail::QueryPlan& plan, const std::string& index) {
  bool ready = true;
  if (index != "flat") {
    for (const auto& s : plan.slots) ready &= caches.ann.count({s.version.id, s.index->dim(), index}) > 0;
  }
  return ready;
}

/// The search proper, on a plan whose indexes are all open (the caller holds the cache
/// lock, shared).
SearchResult search_plan(const detail::Caches& caches, const detail::QueryPlan& plan, Merge merge, int64_t nq,
                         const float* queries, int64_t dq, const SearchOptions& opt) {
  SearchResult res;
  res.nq = nq;
  res.k = opt.k;
  res.merge = merge;
  const int64_t k = opt.k;
  const size_t ns = plan.slots.size();
  std::vector<std::vector<float>> sc(ns, std::vector<float>(static_cast<size_t>(nq * k)));
  std::vector<std::vector<int64_t>> id(ns, std::vector<int64_t>(static_cast<size_t>(nq * k)));
  for (size_t s = 0; s < ns; ++s) {
    const detail::Slot& slot = plan.slots[s];
    const int64_t d = slot.index->dim();
    const auto qn = eval::normalized_prefix(nq, dq, queries, d);
    const uint8_t* mask = slot.mask.empty() ? nullptr : slot.mask.data();
    if (opt.index == "flat") {
      slot.index->search(nq, qn.data(), k, mask, sc[s].data(), id[s].data());
    } else {
      caches.ann.at({slot.version.id, d, opt.index})
          ->search(*slot.index, nq, qn.data(), k, mask, sc[s].data(), id[s].data(), opt.ann);
    }
  }
  // Aligned merge: per query and slot, a·s + b maps the slot's scores onto the base
  // slot's scale (gallery_fit.cc).
  const detail::AlignFit align =
      merge == Merge::kAligned ? detail::fit_alignment(plan, nq, dq, queries) : detail::AlignFit{};
  res.ids.resize(static_cast<size_t>(nq * k));
  res.scores.resize(static_cast<size_t>(nq * k));
  res.keys.resize(static_cast<size_t>(nq * k));
  res.versions.resize(static_cast<size_t>(nq * k));
  for (int64_t i = 0; i < nq; ++i) {
    TopK top(k);
    for (size_t s = 0; s < ns; ++s) {
      const detail::Slot& slot = plan.slots[s];
      for (int64_t j = 0; j < k; ++j) {
        const int64_t item = id[s][i * k + j];
        if (item < 0) break;
        const float score = sc[s][i * k + j];
        float key = score;
        if (merge == Merge::kCalibrated && slot.cal) key = static_cast<float>(slot.cal->key(score));
        if (merge == Merge::kRank) key = static_cast<float>(1.0 - (double(j) + 0.5) / double(slot.active));
        if (merge == Merge::kAligned) key = static_cast<float>(align.a[s][i] * score + align.b[s][i]);
        // tag = slot * k + j, to find the score again
        top.push_tagged(key, item, static_cast<int32_t>(s * k + j));
      }
    }
    std::vector<int32_t> tags(static_cast<size_t>(k));
    top.write_tagged(res.keys.data() + i * k, res.ids.data() + i * k, tags.data());
    for (int64_t j = 0; j < k; ++j) {
      const int32_t t = tags[j];
      res.scores[i * k + j] = t < 0 ? kNoScore : sc[t / k][i * k + t % k];
      res.versions[i * k + j] = t < 0 ? -1 : static_cast<int32_t>(plan.slots[t / k].version.id);
    }
  }
  return res;
}

}  // namespace

SearchResult Gallery::search(const std::string& name, int64_t nq, const float* queries, int64_t dq,
                             const SearchOptions& opt) {
  DT_CHECK(opt.k > 0, "gallery search: expected k > 0, found ", opt.k);
  DT_CHECK(opt.index == "flat" || opt.index == "ivf" || opt.index == "hnsw", "gallery search: expected index flat, ivf "
           "or hnsw, found '", opt.index, "'");
  refresh();
  // The plan (versions, masks, calibrations) is cached until the next write or refresh,
  // so a search costs one SQLite call (refresh's data_version) besides the vector work.
  for (;;) {
    {
      std::shared_lock<std::shared_mutex> cl(cache_mu_);
      auto it = caches_->plans.find(name);
      if (it != caches_->plans.end() && ann_ready(*caches_, it->second, opt.index)) {
        const detail::QueryPlan& plan = it->second;
        DT_CHECK(dq == plan.model.dim, "gallery search: queries of model '", name, "' must have dimension ",
                 plan.model.dim, ", found ", dq);
        return search_plan(*caches_, plan, merge_for(plan, opt.merge), nq, queries, dq, opt);
      }
    }
    // Build what is missing under the exclusive lock, then search again under the shared one.
    std::unique_lock<std::shared_mutex> cl(cache_mu_);
    const detail::QueryPlan& plan = query_plan_locked(name);
    if (opt.index != "flat") {
      for (const auto& s : plan.slots) {
        auto& ann = caches_->ann[{s.version.id, s.index->dim(), opt.index}];
        if (!ann) {
          AnnOptions a = opt.ann;
          a.type = opt.index;
          std::string notice;
          ann = AnnIndex::open(cache_dir_, *s.index, s.version, a, options_.write_cache, &notice);
          if (!notice.empty() && options_.notice) options_.notice(notice);
        }
      }
    }
  }
}

}  // namespace dualtune::gallery

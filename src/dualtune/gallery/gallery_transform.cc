// Gallery forward transformation (FCT): the rolling-out model's derived version, made by
// mapping the deployed model's stored vectors through h, without images (types.h).
#include "dualtune/gallery/gallery.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <unordered_set>

#include "dualtune/gallery/gallery_internal.h"
#include "dualtune/util/error.h"

namespace dualtune::gallery {

TransformReport Gallery::transform(const TransformOptions& opt, int64_t in_dim, const VectorMap& h,
                                   const std::function<void(int64_t, int64_t)>& progress,
                                   const std::atomic<bool>* cancel) {
  std::lock_guard<std::mutex> wl(writer_mu_);
  DT_CHECK(opt.chunk > 0, "gallery transform: expected a chunk size > 0, found ", opt.chunk);
  const auto t0 = std::chrono::steady_clock::now();
  TransformReport rep;
  ModelInfo target, source;
  std::vector<int64_t> pending;
  {
    std::lock_guard<std::mutex> lk(store_mu_);
    source = deployed_locked();
    if (opt.model.empty()) {
      const auto it = detail::rolling_out(store_->models());
      DT_CHECK(it, "gallery transform: no model is rolling out in ", dir_,
               "; expected `gallery rollout` of the model h maps into first");
      target = *it;
    } else {
      target = store_->model(opt.model);
    }
    DT_CHECK(target.role == Role::kRollingOut, "gallery transform: model '", target.name, "' is ",
             role_name(target.role), "; expected the rolling-out model (h maps the deployed model's vectors into it)");
    if (opt.check) opt.check(source, target);
    DT_CHECK(in_dim == source.dim, "gallery transform: h maps ", in_dim, "-d vectors, the deployed model '", source.name,
             "' stores ", source.dim, "-d ones");
    const std::string name = opt.version.empty() ? target.name + "@h" : opt.version;
    bool found = false;
    for (const auto& v : store_->versions()) {
      if (v.name != name) continue;
      DT_CHECK(v.model_id == target.id && v.derived_from == source.version_id, "gallery transform: version '", name,
               "' exists and is not a transform of '", source.name, "' into '", target.name,
               "'; expected a new name (--version)");
      DT_CHECK(v.transform == opt.transform, "gallery transform: version '", name, "' was written by h = ", v.transform,
               "; this h is ", opt.transform, ". Expected the same h to continue it, or another --version name");
      rep.version = v;
      found = true;
    }
    if (!found) {
      for (const auto& m : store_->models())
        DT_CHECK(m.name != name, "gallery transform: '", name, "' is the name of a model; expected another --version name");
      rep.version = store_->add_derived_version(name, target.id, target.dim, source.version_id, opt.transform);
    }
    // Items with the deployed vector, without the model's own one and without this version's.
    const auto with_target = store_->items_with(target.version_id);
    const auto with_version = store_->items_with(rep.version.id);
    const std::unordered_set<int64_t> backfilled(with_target.begin(), with_target.end());
    const std::unordered_set<int64_t> done(with_version.begin(), with_version.end());
    for (int64_t id : store_->items_with(source.version_id)) {
      if (backfilled.count(id)) ++rep.backfilled;
      else if (done.count(id)) ++rep.already;
      else pending.push_back(id);
    }
  }
  invalidate_local();  // a new version: query plans are rebuilt
  const int64_t total = static_cast<int64_t>(pending.size()), dn = target.dim;
  for (int64_t c0 = 0; c0 < total; c0 += opt.chunk) {
    if (cancel && cancel->load()) {
      rep.cancelled = true;
      break;
    }
    const int64_t c1 = std::min(total, c0 + opt.chunk), n = c1 - c0;
    const std::vector<int64_t> ids(pending.begin() + c0, pending.begin() + c1);
    std::vector<uint8_t> has;
    std::vector<float> in;
    {
      std::lock_guard<std::mutex> lk(store_mu_);
      in = store_->vectors_of(source.version_id, ids, has);
    }
    const std::vector<float> out = h(n, in.data());  // outside the store lock: searches go on
    DT_CHECK(static_cast<int64_t>(out.size()) == n * dn, "gallery transform: h returned ", out.size(),
             " floats for ", n, " vectors; expected ", n, " × ", dn);
    for (int64_t i = 0; i < n * dn; ++i)
      DT_CHECK(std::isfinite(out[static_cast<size_t>(i)]), "gallery transform: h mapped item ", ids[i / dn],
               " to a non-finite component ", i % dn, " (", out[static_cast<size_t>(i)],
               "); expected finite values (nothing of this chunk was stored)");
    {
      std::lock_guard<std::mutex> lk(store_mu_);
      rep.transformed += store_->add_vectors(ids, VersionRows{rep.version.id, dn, out.data()}, {}, true);
    }
    invalidate_local();
    if (progress) progress(c1, total);
  }
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace dualtune::gallery

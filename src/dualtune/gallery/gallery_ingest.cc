// Gallery ingest: new items and vectors. import_vectors stores embeddings computed
// elsewhere (a feature directory), add_images embeds images with every active model.
// Both refuse keys twice in the input and, unless skip_existing, keys already stored.
#include "dualtune/gallery/gallery.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <unordered_set>

#include "dualtune/gallery/gallery_internal.h"
#include "dualtune/util/error.h"

namespace dualtune::gallery {
namespace {

void check_finite(int64_t n, int64_t d, const float* x, const std::vector<ItemRecord>& items, const std::string& what) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < d; ++c)
      DT_CHECK(std::isfinite(x[i * d + c]), what, ": the vector of '", items[static_cast<size_t>(i)].key,
               "' has a non-finite component ", c, " (", x[i * d + c], "); expected finite values");
}

/// Positions (first, again) of the first key repeated in `items`, or (-1, -1).
std::pair<int64_t, int64_t> find_duplicate(const std::vector<ItemRecord>& items) {
  std::unordered_map<std::string, int64_t> seen;
  seen.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    auto [it, fresh] = seen.emplace(items[i].key, static_cast<int64_t>(i));
    if (!fresh) return {it->second, static_cast<int64_t>(i)};
  }
  return {-1, -1};
}

/// Calls fn(c0, c1, x) for consecutive chunks [c0, c1) of `rows` (at most `chunk` long);
/// x holds their rows of `vectors` (n × dim), in that order.
template <class Fn>
void for_each_chunk(const std::vector<size_t>& rows, int64_t chunk, const float* vectors, int64_t dim, Fn fn) {
  std::vector<float> buf;
  for (size_t c0 = 0; c0 < rows.size(); c0 += static_cast<size_t>(chunk)) {
    const size_t c1 = std::min(rows.size(), c0 + static_cast<size_t>(chunk));
    buf.clear();
    for (size_t j = c0; j < c1; ++j) buf.insert(buf.end(), vectors + rows[j] * dim, vectors + (rows[j] + 1) * dim);
    fn(c0, c1, buf.data());
  }
}

}  // namespace

AddReport Gallery::import_vectors(const std::string& name, const std::vector<ItemRecord>& items, int64_t dim,
                                  const float* vectors, bool skip_existing, int64_t chunk) {
  std::lock_guard<std::mutex> wl(writer_mu_);
  DT_CHECK(chunk > 0, "gallery import: expected a chunk size > 0, found ", chunk);
  const auto [first, again] = find_duplicate(items);
  DT_CHECK(first < 0, "gallery import: key '", first >= 0 ? items[first].key : "", "' appears twice in the input (rows ",
           first, " and ", again, "); expected unique keys");
  for (const auto& it : items) DT_CHECK(!it.key.empty(), "gallery import: expected non-empty keys, found an empty one");
  AddReport rep;
  std::lock_guard<std::mutex> lk(store_mu_);
  const ModelInfo m = store_->model(name);
  DT_CHECK(m.role != Role::kRetired && m.role != Role::kRolledBack, "gallery import: model '", name, "' is ",
           role_name(m.role), "; expected a deployed or rolling-out model");
  DT_CHECK(dim == m.dim, "gallery import: model '", name, "' has embedding size ", m.dim, ", the vectors have ", dim);
  check_finite(static_cast<int64_t>(items.size()), dim, vectors, items, "gallery import");
  std::vector<std::string> keys;
  keys.reserve(items.size());
  for (const auto& it : items) keys.push_back(it.key);
  const std::vector<int64_t> ids = store_->find_keys(keys);
  const auto with = store_->items_with(m.version_id);
  const std::unordered_set<int64_t> has(with.begin(), with.end());
  std::vector<size_t> fresh, extend;
  int64_t dup = -1, dups = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    if (ids[i] < 0) fresh.push_back(i);
    else if (!has.count(ids[i])) extend.push_back(i);
    else {
      if (dup < 0) dup = static_cast<int64_t>(i);
      ++dups;
    }
  }
  DT_CHECK(dups == 0 || skip_existing, "gallery import: ", dups, " key", dups > 1 ? "s are" : " is",
           " already in the gallery with a vector of '", name, "' (first: '", dup >= 0 ? items[dup].key : "",
           "'); expected new keys (duplicate key), or --skip-existing to resume an interrupted import");
  rep.skipped = dups;
  DT_CHECK(fresh.empty() || m.role == Role::kDeployed, "gallery import: ", fresh.size(), " key",
           fresh.size() > 1 ? "s are" : " is", " not in the gallery (first: '", fresh.empty() ? "" : items[fresh[0]].key,
           "'): new items must carry the deployed model's vector, and '", name, "' is ", role_name(m.role),
           "; import them with the deployed model first");
  for_each_chunk(fresh, chunk, vectors, dim, [&](size_t c0, size_t c1, const float* x) {
    std::vector<ItemRecord> part;
    for (size_t j = c0; j < c1; ++j) part.push_back(items[fresh[j]]);
    store_->add_items(part, {VersionRows{m.version_id, dim, x}});
    rep.added += static_cast<int64_t>(part.size());
    rep.vectors += static_cast<int64_t>(part.size());
    invalidate_local();
  });
  for_each_chunk(extend, chunk, vectors, dim, [&](size_t c0, size_t c1, const float* x) {
    std::vector<int64_t> part;
    for (size_t j = c0; j < c1; ++j) part.push_back(ids[extend[j]]);
    rep.vectors += store_->add_vectors(part, VersionRows{m.version_id, dim, x});
    invalidate_local();
  });
  return rep;
}

AddReport Gallery::add_images(const std::vector<ItemRecord>& items,
                              const std::vector<std::pair<std::string, ImageEmbedder*>>& embedders,
                              int64_t batch_size, bool skip_existing, const std::function<void(int64_t, int64_t)>& progress,
                              const std::atomic<bool>* cancel) {
  std::lock_guard<std::mutex> wl(writer_mu_);
  DT_CHECK(batch_size > 0, "gallery add: expected a batch size > 0, found ", batch_size);
  const auto [first, again] = find_duplicate(items);
  DT_CHECK(first < 0, "gallery add: key '", first >= 0 ? items[first].key : "", "' appears twice in the input (items ",
           first, " and ", again, "); expected unique keys");
  // Every active model must embed the new items, so every query finds them.
  std::vector<ModelInfo> active;
  std::vector<ItemRecord> todo;
  detail::SourceSpecs sources(*store_);
  AddReport rep;
  {
    std::lock_guard<std::mutex> lk(store_mu_);
    // A rolled-back model is not active: its plan picks new items up if it rolls out again.
    for (const auto& m : store_->models())
      if (m.role == Role::kDeployed || m.role == Role::kRollingOut) active.push_back(m);
    std::vector<std::string> keys;
    for (const auto& it : items) keys.push_back(it.key);
    const auto ids = store_->find_keys(keys);
    int64_t dups = 0;
    std::string first_dup;
    for (size_t i = 0; i < items.size(); ++i) {
      if (ids[i] >= 0) {
        if (first_dup.empty()) first_dup = items[i].key;
        ++dups;
      } else {
        todo.push_back(items[i]);
      }
    }
    DT_CHECK(dups == 0 || skip_existing, "gallery add: ", dups, " key", dups > 1 ? "s are" : " is",
             " already in the gallery (first: '", first_dup, "'); expected new keys (duplicate key), or --skip-existing "
             "to add only the others (e.g. after an interrupted add)");
    rep.skipped = dups;
    for (const auto& it : todo) sources(it.source_id);  // read under the lock, used below without it
  }
  std::vector<ImageEmbedder*> order;
  for (const auto& m : active) {
    auto it = std::find_if(embedders.begin(), embedders.end(), [&](const auto& e) { return e.first == m.name; });
    DT_CHECK(it != embedders.end() && it->second, "gallery add: new items need an embedding of every active model; "
             "no model given for '", m.name, "' (", role_name(m.role), ")", m.path.empty() ? " and the gallery records no path for it" : "");
    check_model(m.name, *it->second);
    order.push_back(it->second);
  }
  const int64_t total = static_cast<int64_t>(todo.size());
  for (int64_t b0 = 0; b0 < total; b0 += batch_size) {
    if (cancel && cancel->load()) break;
    const int64_t b1 = std::min(total, b0 + batch_size), n = b1 - b0;
    std::vector<ImageRef> refs;
    for (int64_t i = b0; i < b1; ++i) {
      const auto& it = todo[static_cast<size_t>(i)];
      refs.push_back({-1, it.key, sources(it.source_id)});
    }
    std::vector<std::vector<float>> vecs(active.size());
    std::vector<std::string> errors(static_cast<size_t>(n));
    for (size_t m = 0; m < active.size(); ++m) {
      order[m]->embed({refs}, [&](EmbeddedBatch& eb) {
        DT_CHECK(static_cast<int64_t>(eb.errors.size()) == n &&
                     static_cast<int64_t>(eb.vectors.size()) == n * active[m].dim,
                 "gallery add: the embedder of '", active[m].name, "' returned ", eb.errors.size(), " results for ", n, " items");
        vecs[m] = std::move(eb.vectors);
        for (int64_t i = 0; i < n; ++i)
          if (errors[i].empty() && !eb.errors[i].empty()) errors[i] = eb.errors[i];
        return true;
      });
    }
    std::vector<ItemRecord> ok;
    std::vector<std::vector<float>> okv(active.size());
    for (int64_t i = 0; i < n; ++i) {
      if (!errors[i].empty()) {
        rep.failed.emplace_back(todo[static_cast<size_t>(b0 + i)].key, errors[i]);
        continue;
      }
      ok.push_back(todo[static_cast<size_t>(b0 + i)]);
      for (size_t m = 0; m < active.size(); ++m)
        okv[m].insert(okv[m].end(), vecs[m].begin() + i * active[m].dim, vecs[m].begin() + (i + 1) * active[m].dim);
    }
    std::vector<VersionRows> rows;
    for (size_t m = 0; m < active.size(); ++m) {
      check_finite(static_cast<int64_t>(ok.size()), active[m].dim, okv[m].data(), ok, "gallery add (model " + active[m].name + ")");
      rows.push_back({active[m].version_id, active[m].dim, okv[m].data()});
    }
    if (!ok.empty()) {
      std::lock_guard<std::mutex> lk(store_mu_);
      store_->add_items(ok, rows);
    }
    rep.added += static_cast<int64_t>(ok.size());
    rep.vectors += static_cast<int64_t>(ok.size() * active.size());
    invalidate_local();
    if (progress) progress(b1, total);
  }
  return rep;
}

}  // namespace dualtune::gallery

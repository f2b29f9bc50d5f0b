#include "dualtune/gallery/gallery.h"

#include <cblas.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "dualtune/eval/similarity.h"
#include "dualtune/gallery/topk.h"
#include "dualtune/util/error.h"

namespace fs = std::filesystem;

namespace dualtune::gallery {

struct Gallery::Slot {
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

namespace {
constexpr int64_t kAlignSample = 1024;
}

struct Gallery::QueryPlan {
  ModelInfo model;
  std::vector<Slot> slots;
  bool calibrated = false;  ///< every slot has its score calibration
};

struct Gallery::Caches {
  std::map<std::pair<int64_t, int64_t>, std::unique_ptr<VectorIndex>> flat;  ///< (version id, dim)
  std::map<std::tuple<int64_t, int64_t, std::string>, std::unique_ptr<AnnIndex>> ann;  ///< (version, dim, kind)
  std::map<std::string, QueryPlan> plans;  ///< by query model name
};

namespace {

using Clock = std::chrono::steady_clock;

/// Holds an exclusive flock on DIR/backfill.lock while a backfill runs (released by the
/// kernel if the process dies).
class BackfillLock {
 public:
  explicit BackfillLock(const std::string& dir) {
    const std::string path = (fs::path(dir) / "backfill.lock").string();
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
    DT_CHECK(fd_ >= 0, "gallery backfill: cannot open the lock file ", path);
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      char buf[32] = {0};
      const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
      ::close(fd_);
      DT_THROW("gallery ", dir, ": another backfill is running on this gallery (process ", n > 0 ? buf : "?",
               "); expected none: one backfill at a time");
    }
    const std::string pid = std::to_string(::getpid());
    if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, pid.data(), pid.size(), 0);
  }
  ~BackfillLock() {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }

 private:
  int fd_ = -1;
};

void check_finite(int64_t n, int64_t d, const float* x, const std::vector<ItemRecord>& items, const std::string& what) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < d; ++c)
      DT_CHECK(std::isfinite(x[i * d + c]), what, ": the vector of '", items[static_cast<size_t>(i)].key,
               "' has a non-finite component ", c, " (", x[i * d + c], "); expected finite values");
}

/// Dense labels: distinct label strings in sorted order -> 0..L-1; "" -> -1.
std::vector<int64_t> dense_labels(const std::vector<ItemRow>& rows) {
  std::map<std::string, int64_t> ids;
  for (const auto& r : rows)
    if (!r.record.label.empty()) ids.emplace(r.record.label, 0);
  int64_t next = 0;
  for (auto& [k, v] : ids) v = next++;
  std::vector<int64_t> out;
  out.reserve(rows.size());
  for (const auto& r : rows) out.push_back(r.record.label.empty() ? -1 : ids[r.record.label]);
  return out;
}

}  // namespace

Gallery::Gallery(std::string dir, std::unique_ptr<Store> store, OpenOptions options)
    : dir_(std::move(dir)), options_(std::move(options)), store_(std::move(store)), caches_(std::make_unique<Caches>()) {
  data_version_ = store_->data_version();
}

Gallery::~Gallery() = default;

std::unique_ptr<Gallery> Gallery::create(const std::string& dir, const ModelRegistration& deployed,
                                         const OpenOptions& options) {
  DT_CHECK(!options.read_only, "gallery create: cannot create a gallery read-only");
  auto store = Store::create(dir);
  store->add_model(deployed.name, deployed.dim, deployed.path, deployed.config_hash, Role::kDeployed);
  return std::unique_ptr<Gallery>(new Gallery(dir, std::move(store), options));
}

std::unique_ptr<Gallery> Gallery::open(const std::string& dir, const OpenOptions& options) {
  return std::unique_ptr<Gallery>(new Gallery(dir, Store::open(dir, options.read_only), options));
}

// --- metadata ---------------------------------------------------------------------

std::vector<ModelInfo> Gallery::models() {
  std::lock_guard<std::mutex> lk(store_mu_);
  return store_->models();
}

ModelInfo Gallery::model(const std::string& name) {
  std::lock_guard<std::mutex> lk(store_mu_);
  return store_->model(name);
}

ModelInfo Gallery::deployed_locked() {
  for (const auto& m : store_->models())
    if (m.role == Role::kDeployed) return m;
  DT_THROW("gallery ", dir_, " has no deployed model (damaged database?)");
}

ModelInfo Gallery::target_model() {
  std::lock_guard<std::mutex> lk(store_mu_);
  for (const auto& m : store_->models())
    if (m.role == Role::kRollingOut) return m;
  return deployed_locked();
}

std::vector<VersionInfo> Gallery::precedence(const std::string& name) {
  std::lock_guard<std::mutex> lk(store_mu_);
  const ModelInfo m = store_->model(name);
  DT_CHECK(m.role != Role::kRetired, "gallery ", dir_, ": model '", name,
           "' is retired: its embeddings were dropped and it cannot be queried; expected a deployed or rolling-out model");
  const auto versions = store_->versions();
  std::vector<VersionInfo> out;
  for (const auto& v : versions)
    if (v.id == m.version_id) out.push_back(v);
  // Derived versions in this model's space, newest first (issue 14: transformed vectors).
  for (auto it = versions.rbegin(); it != versions.rend(); ++it)
    if (it->model_id == m.id && it->derived_from != 0) out.push_back(*it);
  if (m.role == Role::kRollingOut) {
    const ModelInfo dep = deployed_locked();
    for (const auto& v : versions)
      if (v.id == dep.version_id) out.push_back(v);
  }
  return out;
}

std::vector<ItemRow> Gallery::items(const std::vector<int64_t>& ids) {
  std::vector<int64_t> known;
  for (int64_t id : ids)
    if (id >= 0) known.push_back(id);
  std::vector<ItemRow> rows;
  {
    std::lock_guard<std::mutex> lk(store_mu_);
    rows = store_->items(known);
  }
  std::vector<ItemRow> out;
  size_t k = 0;
  for (int64_t id : ids) out.push_back(id >= 0 ? rows[k++] : ItemRow{-1, {}});
  return out;
}

std::vector<ItemRow> Gallery::list_items(int64_t offset, int64_t limit, std::vector<std::vector<int64_t>>* versions) {
  DT_CHECK(offset >= 0 && limit >= 0, "gallery: expected offset >= 0 and limit >= 0, found ", offset, " and ", limit);
  std::lock_guard<std::mutex> lk(store_mu_);
  auto rows = store_->items_page(offset, limit);
  if (versions) {
    std::vector<int64_t> ids;
    for (const auto& r : rows) ids.push_back(r.id);
    *versions = store_->item_versions(ids);
  }
  return rows;
}

std::vector<ImageRef> Gallery::image_refs(const std::vector<int64_t>& ids) {
  std::lock_guard<std::mutex> lk(store_mu_);
  const auto rows = store_->items(ids);
  std::map<int64_t, std::string> sources;
  std::vector<ImageRef> out;
  for (const auto& r : rows) {
    const int64_t sid = r.record.source_id;
    if (sid > 0 && !sources.count(sid)) sources[sid] = store_->source_spec(sid);
    out.push_back({r.id, r.record.key, sid > 0 ? sources[sid] : ""});
  }
  return out;
}

int64_t Gallery::add_source(const std::string& spec_json) {
  std::lock_guard<std::mutex> wl(writer_mu_);
  std::lock_guard<std::mutex> lk(store_mu_);
  return store_->add_source(spec_json);
}

GalleryStatus Gallery::status() {
  GalleryStatus st;
  st.dir = dir_;
  std::lock_guard<std::mutex> lk(store_mu_);
  st.uuid = store_->uuid();
  st.items = store_->item_count();
  for (const auto& v : store_->versions()) st.versions.push_back({v, store_->count_vectors(v.id)});
  for (const auto& m : store_->models()) {
    ModelStatus ms;
    ms.model = m;
    for (const auto& vs : st.versions)
      if (vs.version.id == m.version_id) ms.embeddings = vs.embeddings;
    ms.backfilled = st.items > 0 ? double(ms.embeddings) / double(st.items) : 1.0;
    st.models.push_back(ms);
    if (m.role == Role::kRollingOut) {
      Plan p;
      st.backfill.model = m.name;
      if (store_->load_plan(m.version_id, p)) st.backfill.order = p.order;
      std::tie(st.backfill.planned, st.backfill.done, st.backfill.failed) = store_->plan_counts(m.version_id);
    }
  }
  st.backfill.running = backfill_running_.load();
  return st;
}

// --- lifecycle ----------------------------------------------------------------------

void Gallery::invalidate_local() {
  local_writes_.store(true);
}

ModelInfo Gallery::rollout(const ModelRegistration& r) {
  std::lock_guard<std::mutex> wl(writer_mu_);
  ModelInfo m;
  {
    std::lock_guard<std::mutex> lk(store_mu_);
    for (const auto& x : store_->models())
      DT_CHECK(x.role != Role::kRollingOut, "gallery ", dir_, ": model '", x.name,
               "' is already rolling out; expected at most one model rolling out (retire one first)");
    m = store_->add_model(r.name, r.dim, r.path, r.config_hash, Role::kRollingOut);
  }
  invalidate_local();
  return m;
}

void Gallery::retire(const std::string& name) {
  std::lock_guard<std::mutex> wl(writer_mu_);
  std::vector<VersionInfo> dropped;
  {
    std::lock_guard<std::mutex> lk(store_mu_);
    const ModelInfo m = store_->model(name);
    DT_CHECK(m.role != Role::kRetired, "gallery ", dir_, ": model '", name, "' is already retired");
    int64_t promote = 0;
    if (m.role == Role::kDeployed) {
      const auto all = store_->models();
      const auto next = std::find_if(all.begin(), all.end(), [](const ModelInfo& x) { return x.role == Role::kRollingOut; });
      DT_CHECK(next != all.end(), "gallery ", dir_, ": cannot retire the deployed model '", name,
               "': no model is rolling out to replace it (expected `gallery rollout` and a full backfill first)");
      const int64_t items = store_->item_count(), have = store_->count_vectors(next->version_id);
      DT_CHECK(have == items, "gallery ", dir_, ": cannot retire the deployed model '", name, "': ", items - have, " of ",
               items, " items have no embedding of '", next->name,
               "' yet and would become unsearchable; expected a finished backfill (`gallery backfill`)");
      promote = next->id;
    }
    // The model's own versions, and versions derived from them (transformed vectors
    // that only existed to stand in for a missing embedding).
    for (const auto& v : store_->versions())
      if (v.model_id == m.id || v.derived_from == m.version_id) dropped.push_back(v);
    std::vector<int64_t> ids;
    for (const auto& v : dropped) ids.push_back(v.id);
    store_->retire_model(m.id, promote, ids);
  }
  {
    std::unique_lock<std::shared_mutex> cl(cache_mu_);
    for (const auto& v : dropped) {
      for (auto it = caches_->flat.begin(); it != caches_->flat.end();)
        it = it->first.first == v.id ? caches_->flat.erase(it) : std::next(it);
      for (auto it = caches_->ann.begin(); it != caches_->ann.end();)
        it = std::get<0>(it->first) == v.id ? caches_->ann.erase(it) : std::next(it);
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(fs::path(dir_) / "index", ec))
        if (e.path().filename().string().rfind(v.name + ".d", 0) == 0) fs::remove(e.path(), ec);
    }
    caches_->plans.clear();
  }
  invalidate_local();
}

void Gallery::check_model(const std::string& name, const ImageEmbedder& embedder) {
  const ModelInfo m = model(name);
  DT_CHECK(embedder.dim() == m.dim, "gallery ", dir_, ": model '", name, "' was registered with embedding size ", m.dim,
           ", the model given embeds ", embedder.dim());
  const std::string fp = embedder.fingerprint();
  DT_CHECK(m.config_hash.empty() || fp == m.config_hash, "gallery ", dir_, ": model '", name,
           "' was registered with fingerprint ", m.config_hash, " (", m.path.empty() ? "no path" : m.path,
           "), the model given has ", fp, ": expected the same model (a retrained model is a new model: roll it out)");
}

// --- writes --------------------------------------------------------------------------

namespace {

/// Index of the first key repeated in `items`, or -1.
std::pair<int64_t, int64_t> find_duplicate(const std::vector<ItemRecord>& items) {
  std::unordered_map<std::string, int64_t> seen;
  seen.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    auto [it, fresh] = seen.emplace(items[i].key, static_cast<int64_t>(i));
    if (!fresh) return {it->second, static_cast<int64_t>(i)};
  }
  return {-1, -1};
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
  DT_CHECK(m.role != Role::kRetired, "gallery import: model '", name, "' is retired; expected a deployed or rolling-out model");
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
  std::vector<float> buf;
  for (size_t c0 = 0; c0 < fresh.size(); c0 += static_cast<size_t>(chunk)) {
    const size_t c1 = std::min(fresh.size(), c0 + static_cast<size_t>(chunk));
    std::vector<ItemRecord> part;
    buf.clear();
    for (size_t j = c0; j < c1; ++j) {
      part.push_back(items[fresh[j]]);
      buf.insert(buf.end(), vectors + fresh[j] * dim, vectors + (fresh[j] + 1) * dim);
    }
    store_->add_items(part, {VersionRows{m.version_id, dim, buf.data()}});
    rep.added += static_cast<int64_t>(part.size());
    rep.vectors += static_cast<int64_t>(part.size());
    invalidate_local();
  }
  for (size_t c0 = 0; c0 < extend.size(); c0 += static_cast<size_t>(chunk)) {
    const size_t c1 = std::min(extend.size(), c0 + static_cast<size_t>(chunk));
    std::vector<int64_t> part;
    buf.clear();
    for (size_t j = c0; j < c1; ++j) {
      part.push_back(ids[extend[j]]);
      buf.insert(buf.end(), vectors + extend[j] * dim, vectors + (extend[j] + 1) * dim);
    }
    rep.vectors += store_->add_vectors(part, VersionRows{m.version_id, dim, buf.data()});
    invalidate_local();
  }
  return rep;
}

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
      const auto all = store_->models();
      const auto it = std::find_if(all.begin(), all.end(), [](const ModelInfo& x) { return x.role == Role::kRollingOut; });
      DT_CHECK(it != all.end(), "gallery transform: no model is rolling out in ", dir_,
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
  std::map<int64_t, std::string> sources;
  AddReport rep;
  {
    std::lock_guard<std::mutex> lk(store_mu_);
    for (const auto& m : store_->models())
      if (m.role != Role::kRetired) active.push_back(m);
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
    for (const auto& it : todo)
      if (it.source_id > 0 && !sources.count(it.source_id)) sources[it.source_id] = store_->source_spec(it.source_id);
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
      refs.push_back({-1, it.key, it.source_id > 0 ? sources[it.source_id] : ""});
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

// --- caches and search ------------------------------------------------------------------

void Gallery::refresh() {
  bool changed = local_writes_.exchange(false);
  {
    std::lock_guard<std::mutex> lk(store_mu_);
    const int64_t dv = store_->data_version();
    if (dv != data_version_) {
      data_version_ = dv;
      changed = true;
    }
  }
  if (!changed) return;
  std::unique_lock<std::shared_mutex> cl(cache_mu_);
  refresh_locked();
}

void Gallery::refresh_locked() {
  std::lock_guard<std::mutex> lk(store_mu_);
  sql::Transaction snapshot(store_->db(), false);  // every index tops up from one snapshot
  for (auto& [key, idx] : caches_->flat) {
    const VersionInfo v = store_->version(key.first);
    if (v.generation != idx->header().generation) {
      idx = std::make_unique<VectorIndex>(store_->uuid(), v, key.second);
      for (auto it = caches_->ann.begin(); it != caches_->ann.end();)
        it = std::get<0>(it->first) == v.id && std::get<1>(it->first) == key.second ? caches_->ann.erase(it) : std::next(it);
    }
    idx->top_up(*store_);
  }
  for (auto& [key, ann] : caches_->ann) ann->top_up(*caches_->flat.at({std::get<0>(key), std::get<1>(key)}));
  snapshot.commit();
  caches_->plans.clear();  // roles, masks and calibrations are rebuilt at the next search
}

void Gallery::flush_caches() {
  std::shared_lock<std::shared_mutex> cl(cache_mu_);
  std::lock_guard<std::mutex> lk(store_mu_);
  for (const auto& [key, idx] : caches_->flat) {
    const std::string path = VectorIndex::cache_path(dir_, store_->version(key.first), key.second, "flat");
    idx->save(path);
  }
}

const Gallery::QueryPlan& Gallery::query_plan_locked(const std::string& name) {
  auto it = caches_->plans.find(name);
  if (it != caches_->plans.end()) return it->second;
  const ModelInfo m = model(name);
  const auto versions = precedence(m.name);
  QueryPlan plan;
  plan.model = m;
  std::lock_guard<std::mutex> lk(store_mu_);
  for (const auto& v : versions) {
    const int64_t d = std::min(m.dim, v.dim);
    auto& idx = caches_->flat[{v.id, d}];
    if (!idx) {
      std::string notice;
      idx = VectorIndex::open(*store_, v, d, options_.write_cache, &notice);
      if (!notice.empty() && options_.notice) options_.notice(notice);
    }
    Slot s;
    s.version = v;
    s.index = idx.get();
    const std::string cal = store_->load_fit("calibration", m.id, v.id);
    if (!cal.empty()) s.cal = Calibration::from_json(cal);
    plan.slots.push_back(std::move(s));
  }
  // An item is scored by the first slot that holds it: later slots mask it out.
  for (size_t k = 0; k < plan.slots.size(); ++k) {
    Slot& s = plan.slots[k];
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
  // Items shared with the base (last) slot, evenly strided, for the aligned merge.
  if (plan.slots.size() > 1) {
    const VectorIndex& base = *plan.slots.back().index;
    for (size_t k = 0; k + 1 < plan.slots.size(); ++k) {
      Slot& s = plan.slots[k];
      std::vector<std::pair<int64_t, int64_t>> shared;
      for (int64_t p = 0; p < s.index->size(); ++p) {
        const int64_t b = base.position(s.index->ids()[p]);
        if (b >= 0) shared.emplace_back(p, b);
      }
      const size_t stride = std::max<size_t>(1, (shared.size() + kAlignSample - 1) / kAlignSample);
      const int64_t d = s.index->dim(), db = base.dim();
      for (size_t i = 0; i < shared.size(); i += stride) {
        s.align_x.insert(s.align_x.end(), s.index->vectors() + shared[i].first * d, s.index->vectors() + (shared[i].first + 1) * d);
        s.align_base_x.insert(s.align_base_x.end(), base.vectors() + shared[i].second * db,
                              base.vectors() + (shared[i].second + 1) * db);
        ++s.align_m;
      }
    }
  }
  plan.calibrated = std::all_of(plan.slots.begin(), plan.slots.end(), [](const Slot& x) { return x.cal.has_value(); });
  return caches_->plans.emplace(name, std::move(plan)).first->second;
}

Merge Gallery::merge_for(const QueryPlan& plan, std::optional<Merge> requested) const {
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

SearchResult Gallery::search(const std::string& name, int64_t nq, const float* queries, int64_t dq,
                             const SearchOptions& opt) {
  DT_CHECK(opt.k > 0, "gallery search: expected k > 0, found ", opt.k);
  DT_CHECK(opt.index == "flat" || opt.index == "ivf" || opt.index == "hnsw", "gallery search: expected index flat, ivf "
           "or hnsw, found '", opt.index, "'");
  refresh();
  SearchResult res;
  res.nq = nq;
  res.k = opt.k;
  const int64_t k = opt.k;
  // The plan (versions, masks, calibrations) is cached until the next write or refresh,
  // so a search costs one SQLite call (refresh's data_version) besides the vector work.
  for (;;) {
    {
      std::shared_lock<std::shared_mutex> cl(cache_mu_);
      auto it = caches_->plans.find(name);
      bool ann_ready = true;
      if (it != caches_->plans.end() && opt.index != "flat") {
        for (const auto& s : it->second.slots)
          ann_ready &= caches_->ann.count({s.version.id, s.index->dim(), opt.index}) > 0;
      }
      if (it != caches_->plans.end() && ann_ready) {
        const QueryPlan& plan = it->second;
        DT_CHECK(dq == plan.model.dim, "gallery search: queries of model '", name, "' must have dimension ",
                 plan.model.dim, ", found ", dq);
        const Merge merge = merge_for(plan, opt.merge);
        res.merge = merge;
        const size_t ns = plan.slots.size();
        std::vector<std::vector<float>> sc(ns, std::vector<float>(static_cast<size_t>(nq * k)));
        std::vector<std::vector<int64_t>> id(ns, std::vector<int64_t>(static_cast<size_t>(nq * k)));
        for (size_t s = 0; s < ns; ++s) {
          const Slot& slot = plan.slots[s];
          const int64_t d = slot.index->dim();
          const auto qn = eval::normalized_prefix(nq, dq, queries, d);
          const uint8_t* mask = slot.mask.empty() ? nullptr : slot.mask.data();
          if (opt.index == "flat") {
            slot.index->search(nq, qn.data(), k, mask, sc[s].data(), id[s].data());
          } else {
            caches_->ann.at({slot.version.id, d, opt.index})
                ->search(*slot.index, nq, qn.data(), k, mask, sc[s].data(), id[s].data(), opt.ann);
          }
        }
        // Aligned merge: per query and slot, a·s + b maps the slot's scores onto the base
        // slot's scale, fitted on the shared sample (mean and deviation matched).
        std::vector<std::vector<double>> align_a(ns, std::vector<double>(static_cast<size_t>(nq), 1.0)),
            align_b(ns, std::vector<double>(static_cast<size_t>(nq), 0.0));
        if (merge == Merge::kAligned) {
          const Slot& base = plan.slots.back();
          const auto qb = eval::normalized_prefix(nq, dq, queries, base.index->dim());
          for (size_t s = 0; s + 1 < ns; ++s) {
            const Slot& slot = plan.slots[s];
            const int64_t m_ = slot.align_m;
            if (m_ < 2) continue;
            const int64_t d = slot.index->dim(), db = base.index->dim();
            const auto qs = eval::normalized_prefix(nq, dq, queries, d);
            std::vector<float> Sn(static_cast<size_t>(nq * m_)), So(static_cast<size_t>(nq * m_));
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(nq), int(m_), int(d), 1.f, qs.data(), int(d),
                        slot.align_x.data(), int(d), 0.f, Sn.data(), int(m_));
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(nq), int(m_), int(db), 1.f, qb.data(), int(db),
                        slot.align_base_x.data(), int(db), 0.f, So.data(), int(m_));
            for (int64_t i = 0; i < nq; ++i) {
              double n1 = 0, n2 = 0, o1 = 0, o2 = 0;
              for (int64_t t = 0; t < m_; ++t) {
                const double sn = Sn[i * m_ + t], so = So[i * m_ + t];
                n1 += sn, n2 += sn * sn, o1 += so, o2 += so * so;
              }
              const double mn = n1 / m_, mo = o1 / m_;
              const double sdn = std::sqrt(std::max(0.0, n2 / m_ - mn * mn)), sdo = std::sqrt(std::max(0.0, o2 / m_ - mo * mo));
              if (sdn > 0) {
                align_a[s][i] = sdo / sdn;
                align_b[s][i] = mo - align_a[s][i] * mn;
              }
            }
          }
        }
        res.ids.resize(static_cast<size_t>(nq * k));
        res.scores.resize(static_cast<size_t>(nq * k));
        res.keys.resize(static_cast<size_t>(nq * k));
        res.versions.resize(static_cast<size_t>(nq * k));
        for (int64_t i = 0; i < nq; ++i) {
          TopK top(k);
          for (size_t s = 0; s < ns; ++s) {
            const Slot& slot = plan.slots[s];
            for (int64_t j = 0; j < k; ++j) {
              const int64_t item = id[s][i * k + j];
              if (item < 0) break;
              const float score = sc[s][i * k + j];
              float key = score;
              if (merge == Merge::kCalibrated && slot.cal) key = static_cast<float>(slot.cal->key(score));
              if (merge == Merge::kRank) key = static_cast<float>(1.0 - (double(j) + 0.5) / double(slot.active));
              if (merge == Merge::kAligned) key = static_cast<float>(align_a[s][i] * score + align_b[s][i]);
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
    }
    std::unique_lock<std::shared_mutex> cl(cache_mu_);
    const QueryPlan& plan = query_plan_locked(name);
    if (opt.index != "flat") {
      for (const auto& s : plan.slots) {
        auto& ann = caches_->ann[{s.version.id, s.index->dim(), opt.index}];
        if (!ann) {
          AnnOptions a = opt.ann;
          a.type = opt.index;
          std::string notice;
          ann = AnnIndex::open(dir_, *s.index, s.version, a, options_.write_cache, &notice);
          if (!notice.empty() && options_.notice) options_.notice(notice);
        }
      }
    }
  }
}

// --- fits ---------------------------------------------------------------------------------

Gallery::FitReport Gallery::fit_transition(const std::string& name, int64_t n, const float* old_vectors,
                                           const float* new_vectors, const int64_t* labels) {
  std::lock_guard<std::mutex> wl(writer_mu_);
  ModelInfo m, dep;
  {
    std::lock_guard<std::mutex> lk(store_mu_);
    m = store_->model(name);
    dep = deployed_locked();
  }
  DT_CHECK(m.role == Role::kRollingOut, "gallery calibrate: model '", name, "' is ", role_name(m.role),
           "; expected the rolling-out model (its queries meet two versions)");
  FitReport rep;
  if (labels) {
    rep.cal_new = fit_calibration_pairs(n, m.dim, new_vectors, m.dim, new_vectors, labels);
    rep.cal_old = fit_calibration_pairs(n, m.dim, new_vectors, dep.dim, old_vectors, labels);
  }
  rep.predictor = fit_discrepancy_predictor(n, dep.dim, old_vectors, m.dim, new_vectors);
  {
    std::lock_guard<std::mutex> lk(store_mu_);
    sql::Transaction t(store_->db());
    if (labels) {
      store_->save_fit("calibration", m.id, m.version_id, rep.cal_new.to_json());
      store_->save_fit("calibration", m.id, dep.version_id, rep.cal_old.to_json());
    }
    store_->save_fit("order", m.id, dep.version_id, rep.predictor.to_json());
    t.commit();
  }
  invalidate_local();
  return rep;
}

std::optional<Calibration> Gallery::calibration(const std::string& query_model, int64_t version_id) {
  std::lock_guard<std::mutex> lk(store_mu_);
  const std::string s = store_->load_fit("calibration", store_->model(query_model).id, version_id);
  if (s.empty()) return std::nullopt;
  return Calibration::from_json(s);
}

std::optional<DiscrepancyPredictor> Gallery::order_predictor(const std::string& name) {
  std::lock_guard<std::mutex> lk(store_mu_);
  const ModelInfo m = store_->model(name);
  const std::string s = store_->load_fit("order", m.id, deployed_locked().version_id);
  if (s.empty()) return std::nullopt;
  return DiscrepancyPredictor::from_json(s);
}

// --- backfill --------------------------------------------------------------------------------

namespace {

/// The rolling-out model named in options (or the rolling-out one).
ModelInfo backfill_model(Store& store, const std::string& dir, const std::string& name) {
  std::vector<ModelInfo> all = store.models();
  ModelInfo m;
  if (!name.empty()) {
    m = store.model(name);
  } else {
    auto it = std::find_if(all.begin(), all.end(), [](const ModelInfo& x) { return x.role == Role::kRollingOut; });
    DT_CHECK(it != all.end(), "gallery ", dir, ": nothing to backfill: no model is rolling out (expected `gallery rollout` first)");
    m = *it;
  }
  DT_CHECK(m.role == Role::kRollingOut, "gallery ", dir, ": model '", m.name, "' is ", role_name(m.role),
           "; expected the rolling-out model (a backfill fills in the embeddings of the model being rolled out)");
  return m;
}

}  // namespace

Plan Gallery::plan_backfill(const BackfillOptions& opt) {
  std::lock_guard<std::mutex> wl(writer_mu_);
  DT_CHECK(opt.batch_size > 0, "gallery backfill: expected a batch size > 0, found ", opt.batch_size);
  std::optional<DiscrepancyPredictor> predictor;
  ModelInfo m;
  {
    std::lock_guard<std::mutex> lk(store_mu_);
    m = backfill_model(*store_, dir_, opt.model);
  }
  Plan plan;
  bool have;
  {
    std::lock_guard<std::mutex> lk(store_mu_);
    have = store_->load_plan(m.version_id, plan);
  }
  predictor = order_predictor(m.name);
  std::string order = opt.order.empty() ? (have && !opt.replan ? plan.order : (predictor ? "uncertainty" : "random")) : opt.order;
  DT_CHECK(order == "random" || order == "uncertainty", "gallery backfill: expected order random or uncertainty, found '",
           order, "' (oracle needs every new embedding: it exists only for `gallery curve`)");
  DT_CHECK(!have || opt.replan || order == plan.order, "gallery backfill: a plan with order '", plan.order, "' exists for '",
           m.name, "'; expected the same order to resume it, or --replan to re-plan the pending items with '", order, "'");
  DT_CHECK(order != "uncertainty" || predictor, "gallery backfill: order 'uncertainty' needs the order predictor of '",
           m.name, "' (`gallery calibrate --model ", m.name, "` with a training set embedded by both models); none is stored");
  std::lock_guard<std::mutex> lk(store_mu_);
  // Items to (re)plan: without the version and not yet in the kept part of the plan.
  const auto without = store_->items_without(m.version_id);
  std::vector<int64_t> kept;
  if (have && !opt.replan) kept = plan.items;
  const std::unordered_set<int64_t> in_plan(kept.begin(), kept.end());
  std::vector<int64_t> fresh;
  for (int64_t id : without)
    if (!in_plan.count(id)) fresh.push_back(id);
  if (have && !opt.replan && fresh.empty()) return plan;
  std::vector<int64_t> ordered;
  if (order == "random") {
    ordered = random_order(fresh, opt.seed);
  } else {
    std::vector<uint8_t> has;
    const auto old = store_->vectors_of(deployed_locked().version_id, fresh, has);
    auto score = predictor->predict(static_cast<int64_t>(fresh.size()), old.data());
    for (size_t i = 0; i < fresh.size(); ++i)
      if (!has[i]) score[i] = -HUGE_VAL;
    ordered = order_by_score_desc(fresh, score);
  }
  Plan out;
  out.version_id = m.version_id;
  out.order = order;
  out.seed = have && !opt.replan ? plan.seed : opt.seed;
  out.batch_size = have && !opt.replan ? plan.batch_size : opt.batch_size;
  // A re-plan keeps the items already embedded at the front, so progress counts stay whole.
  if (have && opt.replan) {
    const std::unordered_set<int64_t> pending(without.begin(), without.end());
    for (int64_t id : plan.items)
      if (!pending.count(id)) out.items.push_back(id);
  }
  out.items.insert(out.items.end(), kept.begin(), kept.end());
  out.items.insert(out.items.end(), ordered.begin(), ordered.end());
  store_->save_plan(out);
  return out;
}

std::vector<BackfillBatch> Gallery::pending_batches(const BackfillOptions& opt) {
  DT_CHECK(opt.world >= 1 && opt.rank >= 0 && opt.rank < opt.world, "gallery backfill: expected 0 <= rank < world, found rank ",
           opt.rank, " of ", opt.world);
  std::lock_guard<std::mutex> lk(store_mu_);
  const ModelInfo m = backfill_model(*store_, dir_, opt.model);
  Plan plan;
  DT_CHECK(store_->load_plan(m.version_id, plan), "gallery backfill: no plan for '", m.name, "' yet; expected one "
           "(the writer plans before workers start)");
  const auto with = store_->items_with(m.version_id);
  const std::unordered_set<int64_t> done(with.begin(), with.end());
  std::unordered_set<int64_t> failed;
  for (const auto& f : store_->failures(m.version_id)) failed.insert(f.first);
  std::vector<BackfillBatch> all;
  const int64_t B = plan.batch_size, np = static_cast<int64_t>(plan.items.size());
  for (int64_t b = 0; b * B < np; ++b) {
    BackfillBatch batch;
    batch.index = b;
    for (int64_t p = b * B; p < std::min(np, (b + 1) * B); ++p) {
      const int64_t id = plan.items[static_cast<size_t>(p)];
      if (!done.count(id) && !failed.count(id)) batch.items.push_back({id, "", ""});
    }
    if (!batch.items.empty()) all.push_back(std::move(batch));
  }
  std::vector<BackfillBatch> mine;
  for (size_t i = 0; i < all.size(); ++i)
    if (static_cast<int>(i % static_cast<size_t>(opt.world)) == opt.rank) mine.push_back(std::move(all[i]));
  // Keys and image sources.
  std::map<int64_t, std::string> sources;
  for (auto& b : mine) {
    std::vector<int64_t> ids;
    for (const auto& r : b.items) ids.push_back(r.item_id);
    const auto rows = store_->items(ids);
    for (size_t i = 0; i < rows.size(); ++i) {
      const int64_t sid = rows[i].record.source_id;
      if (sid > 0 && !sources.count(sid)) sources[sid] = store_->source_spec(sid);
      b.items[i].key = rows[i].record.key;
      b.items[i].source = sid > 0 ? sources[sid] : "";
    }
  }
  return mine;
}

int64_t Gallery::commit_batch(const std::string& name, const EmbeddedBatch& batch) {
  std::lock_guard<std::mutex> wl(writer_mu_);
  const size_t n = batch.item_ids.size();
  int64_t stored = 0;
  {
    std::lock_guard<std::mutex> lk(store_mu_);
    const ModelInfo m = store_->model(name);
    DT_CHECK(batch.errors.size() == n && batch.vectors.size() == n * static_cast<size_t>(m.dim), "gallery backfill: batch ",
             batch.index, " has ", n, " items, ", batch.errors.size(), " errors and ", batch.vectors.size(),
             " floats; expected ", n, " × ", m.dim);
    std::vector<int64_t> ok;
    std::vector<float> vec;
    std::vector<std::pair<int64_t, std::string>> failures;
    for (size_t i = 0; i < n; ++i) {
      bool finite = true;
      for (int64_t c = 0; c < m.dim; ++c) finite &= std::isfinite(batch.vectors[i * m.dim + c]);
      if (!batch.errors[i].empty() || !finite) {
        failures.emplace_back(batch.item_ids[i], batch.errors[i].empty() ? "non-finite embedding" : batch.errors[i]);
        continue;
      }
      ok.push_back(batch.item_ids[i]);
      vec.insert(vec.end(), batch.vectors.begin() + i * m.dim, batch.vectors.begin() + (i + 1) * m.dim);
    }
    stored = store_->add_vectors(ok, VersionRows{m.version_id, m.dim, vec.data()}, failures, true);
  }
  invalidate_local();
  return stored;
}

BackfillProgress Gallery::backfill_progress(const std::string& name) {
  std::lock_guard<std::mutex> lk(store_mu_);
  const ModelInfo m = store_->model(name);
  BackfillProgress p;
  std::tie(p.planned, p.done, p.failed) = store_->plan_counts(m.version_id);
  return p;
}

BackfillReport Gallery::backfill(const BackfillOptions& opt_in, ImageEmbedder& embedder,
                                 const std::function<void(const BackfillProgress&)>& progress,
                                 const std::atomic<bool>* cancel, RemoteWorkers* remote) {
  DT_CHECK(!options_.read_only, "gallery backfill: the gallery was opened read-only");
  bool expected = false;
  DT_CHECK(backfill_running_.compare_exchange_strong(expected, true), "gallery ", dir_,
           ": a backfill is already running in this process; expected one at a time");
  struct Reset {
    std::atomic<bool>& f;
    ~Reset() { f.store(false); }
  } reset{backfill_running_};
  BackfillLock lock(dir_);
  const auto t0 = Clock::now();
  BackfillOptions opt = opt_in;
  {
    std::lock_guard<std::mutex> lk(store_mu_);
    opt.model = backfill_model(*store_, dir_, opt.model).name;
  }
  const ModelInfo m = model(opt.model);
  check_model(opt.model, embedder);
  if (opt.retry_failed) {
    std::lock_guard<std::mutex> lk(store_mu_);
    store_->clear_failures(m.version_id);
  }
  plan_backfill(opt);
  opt.world = remote ? remote->world() : 1;
  std::unordered_map<int64_t, std::string> keys;
  std::vector<BackfillBatch> own;
  for (int r = 0; r < opt.world; ++r) {
    opt.rank = r;
    auto share = pending_batches(opt);
    for (const auto& b : share)
      for (const auto& it : b.items) keys[it.item_id] = it.key;
    if (r == 0) own = std::move(share);
    else remote->assign(r, share, m);
  }
  BackfillProgress prog = backfill_progress(opt.model);
  BackfillReport rep;
  if (progress) progress(prog);
  bool stop = false;
  // Commits one batch (embedded here or by a worker); false once the backfill must stop.
  auto commit = [&](EmbeddedBatch& eb) {
    const int64_t stored = commit_batch(opt.model, eb);
    int64_t failed = 0;
    for (size_t i = 0; i < eb.errors.size(); ++i) {
      if (!eb.errors[i].empty()) {
        ++failed;
        rep.failures.emplace_back(keys[eb.item_ids[i]], eb.errors[i]);
      }
    }
    rep.embedded += stored;
    rep.failed += failed;
    prog.done += stored;
    prog.failed += failed;
    prog.this_run = rep.embedded + rep.failed;
    prog.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    prog.items_per_second = prog.seconds > 0 ? double(prog.this_run) / prog.seconds : 0;
    const int64_t left = prog.planned - prog.done - prog.failed;
    prog.eta_seconds = prog.items_per_second > 0 ? double(left) / prog.items_per_second : 0;
    if (progress) progress(prog);
    if (cancel && cancel->load()) rep.cancelled = stop = true;
    if (opt.max_items > 0 && prog.this_run >= opt.max_items) stop = true;
    if (opt.max_seconds > 0 && prog.seconds >= opt.max_seconds) stop = true;
    return !stop;
  };
  std::vector<std::vector<ImageRef>> lists;
  for (const auto& b : own) lists.push_back(b.items);
  embedder.embed(lists, [&](EmbeddedBatch& eb) {
    eb.index = own.at(static_cast<size_t>(eb.index)).index;
    if (!commit(eb)) return false;
    EmbeddedBatch theirs;
    while (remote && !stop && remote->next(theirs, false)) commit(theirs);
    return !stop;
  });
  if (remote) {
    EmbeddedBatch theirs;
    while (!stop && remote->next(theirs, true)) commit(theirs);
    remote->stop();
  }
  const BackfillProgress end = backfill_progress(opt.model);
  rep.remaining = end.planned - end.done - end.failed;
  rep.finished = rep.remaining == 0;
  rep.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return rep;
}

// --- evaluation -------------------------------------------------------------------------------

CurveData Gallery::curve_data(const std::string& name, std::vector<int64_t>* ids_out) {
  std::lock_guard<std::mutex> lk(store_mu_);
  const ModelInfo m = store_->model(name);
  const ModelInfo dep = deployed_locked();
  DT_CHECK(m.id != dep.id, "gallery curve: model '", name, "' is the deployed model; expected the rolling-out model");
  const auto with_new = store_->items_with(m.version_id);
  const auto with_old = store_->items_with(dep.version_id);
  std::vector<int64_t> ids;
  std::set_intersection(with_new.begin(), with_new.end(), with_old.begin(), with_old.end(), std::back_inserter(ids));
  DT_CHECK(!ids.empty(), "gallery curve: no item has both a '", dep.name, "' and a '", name,
           "' embedding; expected the new embeddings of the gallery (backfill it, or import the new model's features)");
  CurveData d;
  d.n = static_cast<int64_t>(ids.size());
  d.d_old = dep.dim;
  d.d_new = m.dim;
  std::vector<uint8_t> has;
  d.old_vectors = store_->vectors_of(dep.version_id, ids, has);
  d.new_vectors = store_->vectors_of(m.version_id, ids, has);
  const auto rows = store_->items(ids);
  d.labels = dense_labels(rows);
  bool any_cam = false;
  for (const auto& r : rows) any_cam |= r.record.cam >= 0;
  if (any_cam)
    for (const auto& r : rows) d.cams.push_back(r.record.cam);
  d.nq = d.n;
  d.queries = d.new_vectors;
  d.query_labels = d.labels;
  d.query_cams = d.cams;
  d.query_self.resize(static_cast<size_t>(d.n));
  for (int64_t i = 0; i < d.n; ++i) d.query_self[i] = i;
  if (ids_out) *ids_out = ids;
  return d;
}

std::vector<CurvePoint> Gallery::evaluate_state(const std::string& name, int64_t nq, const float* queries,
                                                const std::vector<std::string>& query_keys,
                                                const std::vector<Merge>& merges, int threads) {
  CurveData d;
  std::vector<CurveSpec> specs;
  double fraction = 0;
  {
    std::lock_guard<std::mutex> lk(store_mu_);
    const ModelInfo m = store_->model(name);
    const ModelInfo dep = deployed_locked();
    DT_CHECK(m.id != dep.id, "gallery: evaluate_state expects the rolling-out model, '", name, "' is deployed");
    const auto rows = store_->items();
    std::vector<int64_t> ids;
    for (const auto& r : rows) ids.push_back(r.id);
    d.n = static_cast<int64_t>(ids.size());
    d.d_old = dep.dim;
    d.d_new = m.dim;
    std::vector<uint8_t> has_old, has_new;
    d.old_vectors = store_->vectors_of(dep.version_id, ids, has_old);
    d.new_vectors = store_->vectors_of(m.version_id, ids, has_new);
    d.labels = dense_labels(rows);
    for (const auto& r : rows) d.cams.push_back(r.record.cam);
    if (std::all_of(d.cams.begin(), d.cams.end(), [](int64_t c) { return c < 0; })) d.cams.clear();
    // Items with the new vector first: at fraction count/n exactly they are scored new/new.
    std::vector<int64_t> order;
    for (int64_t i = 0; i < d.n; ++i)
      if (has_new[i]) order.push_back(i);
    const int64_t backfilled = static_cast<int64_t>(order.size());
    for (int64_t i = 0; i < d.n; ++i) {
      DT_CHECK(has_new[i] || has_old[i], "gallery: item '", rows[i].record.key, "' has no embedding of '", name,
               "' nor of '", dep.name, "'");
      if (!has_new[i]) order.push_back(i);
    }
    std::unordered_map<std::string, int64_t> index;
    for (int64_t i = 0; i < d.n; ++i) index[rows[i].record.key] = i;
    DT_CHECK(static_cast<int64_t>(query_keys.size()) == nq, "gallery: expected one key per query");
    d.nq = nq;
    d.queries.assign(queries, queries + nq * m.dim);
    for (const auto& k : query_keys) {
      auto it = index.find(k);
      DT_CHECK(it != index.end(), "gallery: query key '", k, "' is not a gallery item (expected leave-one-out queries)");
      d.query_self.push_back(it->second);
      d.query_labels.push_back(d.labels[it->second]);
    }
    if (!d.cams.empty())
      for (int64_t s : d.query_self) d.query_cams.push_back(d.cams[s]);
    for (Merge mg : merges) {
      CurveSpec spec{"now", order, mg, {}, {}};
      if (mg == Merge::kCalibrated) {
        const std::string cn = store_->load_fit("calibration", m.id, m.version_id);
        const std::string co = store_->load_fit("calibration", m.id, dep.version_id);
        DT_CHECK(!cn.empty() && !co.empty(), "gallery: merge 'calibrated' needs the calibrations of '", name, "'");
        spec.cal_new = Calibration::from_json(cn);
        spec.cal_old = Calibration::from_json(co);
      }
      specs.push_back(std::move(spec));
    }
    fraction = d.n > 0 ? double(backfilled) / double(d.n) : 0;
  }
  std::vector<CurvePoint> out;
  for (const auto& c : backfill_curves(d, specs, {fraction}, threads)) out.push_back(c.points.front());
  return out;
}

std::vector<int64_t> Gallery::plan_order_indices(const std::string& name, const std::vector<int64_t>& ids) {
  std::lock_guard<std::mutex> lk(store_mu_);
  const ModelInfo m = store_->model(name);
  Plan plan;
  DT_CHECK(store_->load_plan(m.version_id, plan), "gallery curve: '", name, "' has no backfill plan; expected one "
           "(`gallery backfill`), or an order name");
  std::unordered_map<int64_t, int64_t> index;
  for (size_t i = 0; i < ids.size(); ++i) index[ids[i]] = static_cast<int64_t>(i);
  std::vector<uint8_t> placed(ids.size(), 0);
  std::vector<int64_t> planned;
  for (int64_t id : plan.items) {
    auto it = index.find(id);
    if (it != index.end() && !placed[it->second]) {
      planned.push_back(it->second);
      placed[it->second] = 1;
    }
  }
  // Items that had the new embedding before the plan was made come first.
  std::vector<int64_t> out;
  for (size_t i = 0; i < ids.size(); ++i)
    if (!placed[i]) out.push_back(static_cast<int64_t>(i));
  out.insert(out.end(), planned.begin(), planned.end());
  return out;
}

std::vector<int64_t> Gallery::curve_order(const std::string& name, const std::string& order, uint64_t seed,
                                          const CurveData& data, const std::vector<int64_t>& ids) {
  std::vector<int64_t> idx(static_cast<size_t>(data.n));
  for (int64_t i = 0; i < data.n; ++i) idx[i] = i;
  if (order == "random") return random_order(idx, seed);
  if (order == "plan") return plan_order_indices(name, ids);
  if (order == "oracle")
    return order_by_score_desc(idx, compatibility_error(data.n, data.d_old, data.old_vectors.data(), data.d_new,
                                                        data.new_vectors.data()));
  DT_CHECK(order == "uncertainty", "gallery curve: expected an order random, uncertainty, oracle or plan, found '", order, "'");
  const auto pred = order_predictor(name);
  DT_CHECK(pred, "gallery curve: order 'uncertainty' needs the order predictor of '", name,
           "' (`gallery calibrate`); none is stored");
  return order_by_score_desc(idx, pred->predict(data.n, data.old_vectors.data()));
}

}  // namespace dualtune::gallery

// Gallery: opening and creating a gallery, its metadata (models, versions, items,
// status) and the model lifecycle (rollout, retire). The other parts of the facade are in
// gallery_ingest.cc, gallery_transform.cc, gallery_query_plan.cc, gallery_search.cc,
// gallery_fit.cc, gallery_backfill.cc and gallery_curve.cc.
#include "dualtune/gallery/gallery.h"

#include "dualtune/gallery/freshness.h"
#include "dualtune/gallery/gallery_internal.h"
#include "dualtune/util/error.h"

namespace dualtune::gallery {

Gallery::Gallery(std::string where, std::unique_ptr<Store> store, OpenOptions options)
    : dir_(Store::display_name(where)), location_(std::move(where)), cache_dir_(store->cache_dir()),
      options_(std::move(options)), store_(std::move(store)), caches_(std::make_unique<detail::Caches>()) {
  if (cache_dir_.empty()) options_.write_cache = false;
  data_version_ = store_->data_version();
  if (options_.refresh_ms > 0) {
    // The feed is a connection of its own (PgStore::change_feed reads only the URL).
    Store* store = store_.get();
    freshness_ = std::make_unique<detail::Freshness>(options_.refresh_ms, [store] { return store->change_feed(); });
  }
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
  if (const auto m = detail::rolling_out(store_->models())) return *m;
  return deployed_locked();
}

std::vector<VersionInfo> Gallery::precedence(const std::string& name) {
  std::lock_guard<std::mutex> lk(store_mu_);
  const ModelInfo m = store_->model(name);
  DT_CHECK(m.role != Role::kRetired, "gallery ", dir_, ": model '", name,
           "' is retired: its embeddings were dropped and it cannot be queried; expected a deployed or rolling-out model");
  DT_CHECK(m.role != Role::kRolledBack, "gallery ", dir_, ": model '", name, "' was rolled back (`gallery rollback`): "
           "its queries are off until it is rolled out again; expected a deployed or rolling-out model");
  const auto versions = store_->versions();
  std::vector<VersionInfo> out;
  for (const auto& v : versions)
    if (v.id == m.version_id) out.push_back(v);
  // Derived versions in this model's space, newest first (transformed vectors).
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
  detail::SourceSpecs sources(*store_);
  std::vector<ImageRef> out;
  for (const auto& r : rows) out.push_back({r.id, r.record.key, sources(r.record.source_id)});
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
  st.history = store_->history();
  return st;
}

// --- lifecycle ----------------------------------------------------------------------

void Gallery::invalidate_local() {
  local_writes_.store(true);
}

ModelInfo Gallery::rollout(const ModelRegistration& r, const RolloutGate& gate) {
  std::lock_guard<std::mutex> wl(writer_mu_);
  ModelInfo m;
  {
    std::lock_guard<std::mutex> lk(store_mu_);
    // The check and the write in one write transaction: writers of other processes are
    // serialised with it (SQLite BEGIN IMMEDIATE; PostgreSQL the write_seq row lock, taken
    // before the models are read), so two rollouts cannot both find nothing rolling out.
    auto t = store_->transaction(true);
    std::optional<ModelInfo> back;
    for (const auto& x : store_->models()) {
      DT_CHECK(x.role != Role::kRollingOut, "gallery ", dir_, ": model '", x.name,
               "' is already rolling out; expected at most one model rolling out (roll it back or retire it first)");
      if (x.name == r.name && x.role == Role::kRolledBack) back = x;
    }
    HistoryEvent e;
    e.event = "rollout";
    e.model = r.name;
    e.deployed = deployed_locked().name;
    e.has_gate = true;
    e.gate = gate;
    if (back) {
      // The same model again: its kept embeddings are only valid if it embeds as before.
      DT_CHECK(r.dim == back->dim, "gallery ", dir_, ": model '", r.name, "' was rolled back with embedding size ",
               back->dim, ", the model given embeds ", r.dim, "; expected the same model to resume its rollout "
               "(another model needs another name)");
      DT_CHECK(r.config_hash.empty() || back->config_hash.empty() || r.config_hash == back->config_hash, "gallery ",
               dir_, ": model '", r.name, "' was rolled back with fingerprint ", back->config_hash, ", the model given has ",
               r.config_hash, "; expected the same model to resume its rollout (a retrained model is a new model: "
               "give it another name)");
      const int64_t have = store_->count_vectors(back->version_id), items = store_->item_count();
      e.note = "resumed: " + std::to_string(have) + " of " + std::to_string(items) + " items already embedded";
      store_->set_role_recorded(back->id, Role::kRollingOut, e);
      m = store_->model(r.name);
    } else {
      m = store_->add_model(r.name, r.dim, r.path, r.config_hash, Role::kRollingOut, &e);
    }
    t->commit();
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
      const auto next = detail::rolling_out(store_->models());
      DT_CHECK(next, "gallery ", dir_, ": cannot retire the deployed model '", name,
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
    int64_t vectors = 0;
    for (const auto& v : dropped) ids.push_back(v.id), vectors += store_->count_vectors(v.id);
    HistoryEvent e;
    e.event = "retire";
    e.model = name;
    e.deployed = promote ? detail::rolling_out(store_->models())->name : deployed_locked().name;
    e.note = (promote ? "cutover to '" + e.deployed + "'; " : std::string()) + std::to_string(vectors) +
             " embeddings deleted";
    store_->retire_model(m.id, promote, ids, &e);
  }
  {
    std::unique_lock<std::shared_mutex> cl(cache_mu_);
    detail::drop_versions(*caches_, cache_dir_, dropped);
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

}  // namespace dualtune::gallery

// Gallery backfill: the stored plan (which items get the rolling-out model's embedding,
// in which order and batch grid), the pending share of each worker, committing embedded
// batches, and the backfill loop itself, one per gallery at a time (Store::backfill_lock).
#include "dualtune/gallery/gallery.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <unordered_map>
#include <unordered_set>

#include "dualtune/gallery/gallery_internal.h"
#include "dualtune/util/error.h"

namespace dualtune::gallery {
namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

namespace detail {

ModelInfo backfill_model(Store& store, const std::string& dir, const std::string& name) {
  const std::vector<ModelInfo> all = store.models();
  ModelInfo m;
  if (!name.empty()) {
    m = store.model(name);
  } else {
    const auto it = rolling_out(all);
    DT_CHECK(it, "gallery ", dir, ": nothing to backfill: no model is rolling out (expected `gallery rollout` first)");
    m = *it;
  }
  DT_CHECK(m.role == Role::kRollingOut, "gallery ", dir, ": model '", m.name, "' is ", role_name(m.role),
           "; expected the rolling-out model (a backfill fills in the embeddings of the model being rolled out)");
  return m;
}

void split_embedded(const ModelInfo& m, const EmbeddedBatch& batch, std::vector<int64_t>& ok, std::vector<float>& vec,
                    std::vector<std::pair<int64_t, std::string>>& failures) {
  const size_t n = batch.item_ids.size();
  DT_CHECK(batch.errors.size() == n && batch.vectors.size() == n * static_cast<size_t>(m.dim), "gallery backfill: batch ",
           batch.index, " has ", n, " items, ", batch.errors.size(), " errors and ", batch.vectors.size(),
           " floats; expected ", n, " × ", m.dim);
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
}

}  // namespace detail

using detail::backfill_model;

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
  detail::SourceSpecs sources(*store_);
  for (auto& b : mine) {
    std::vector<int64_t> ids;
    for (const auto& r : b.items) ids.push_back(r.item_id);
    const auto rows = store_->items(ids);
    for (size_t i = 0; i < rows.size(); ++i) {
      b.items[i].key = rows[i].record.key;
      b.items[i].source = sources(rows[i].record.source_id);
    }
  }
  return mine;
}

int64_t Gallery::commit_batch(const std::string& name, const EmbeddedBatch& batch) {
  std::lock_guard<std::mutex> wl(writer_mu_);
  int64_t stored = 0;
  {
    std::lock_guard<std::mutex> lk(store_mu_);
    const ModelInfo m = store_->model(name);
    if (m.role != Role::kRollingOut) return -1;  // rolled back (or retired) since the batch was handed out
    std::vector<int64_t> ok;
    std::vector<float> vec;
    std::vector<std::pair<int64_t, std::string>> failures;
    detail::split_embedded(m, batch, ok, vec, failures);
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
  const detail::BackfillGuard one_at_a_time(backfill_running_, dir_);
  std::unique_ptr<Store::Lock> lock;
  {
    std::lock_guard<std::mutex> lk(store_mu_);
    lock = store_->backfill_lock();  // one backfill per gallery, also across processes
  }
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
    if (stored < 0) {  // `gallery rollback`: stop, keeping what is stored for a later rollout
      rep.rolled_back = stop = true;
      return false;
    }
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

}  // namespace dualtune::gallery

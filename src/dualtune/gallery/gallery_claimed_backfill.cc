// Gallery backfill with many writers: each worker claims batches of the stored plan
// from the store under a lease and commits their vectors itself (store.h, batch claims).
// No batch is embedded by two live workers at once (a worker renews its lease every
// third of it while it embeds), a dead worker's batch comes back one lease after its
// last renewal, and every commit is checked against the claim inside its own
// transaction, so the stored vectors are those of one uninterrupted backfill (embedding
// is deterministic; add_vectors keeps the first copy of an item that two workers raced
// on after a lease overran).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include "dualtune/gallery/gallery.h"
#include "dualtune/gallery/gallery_internal.h"
#include "dualtune/util/error.h"

namespace dualtune::gallery {
namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

/// host:pid:rank:random — unique even when a pid is reused on another machine or later.
std::string default_worker(int rank) {
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  std::random_device rd;
  char tail[16];
  std::snprintf(tail, sizeof tail, "%08x", rd());
  return std::string(host) + ":" + std::to_string(::getpid()) + ":" + std::to_string(rank) + ":" + tail;
}

void pause_for(double seconds) { std::this_thread::sleep_for(std::chrono::duration<double>(seconds)); }

/// Calls renew() every `every` seconds (at most a day) on a thread of its own until it
/// returns false or the keeper is destroyed: keeps the lease of the batch being embedded.
class LeaseKeeper {
 public:
  LeaseKeeper(double every, std::function<bool()> renew)
      : thread_([this, every = std::min(every, 86400.0), renew = std::move(renew)] {
          std::unique_lock<std::mutex> lk(mu_);
          while (!cv_.wait_for(lk, std::chrono::duration<double>(every), [this] { return stop_; })) {
            lk.unlock();
            if (!renew()) return;
            lk.lock();
          }
        }) {}
  ~LeaseKeeper() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace

void Gallery::reopen_store_locked() {
  store_ = Store::open(location_, options_.read_only);
  data_version_ = -1;  // the next refresh compares everything again
}

int64_t Gallery::commit_claimed(const ModelInfo& m, int64_t batch, const std::string& worker, const EmbeddedBatch& eb) {
  std::lock_guard<std::mutex> wl(writer_mu_);
  int64_t stored = 0;
  {
    std::lock_guard<std::mutex> lk(store_mu_);
    auto t = store_->transaction(true);  // PostgreSQL: waits for the write_seq row lock, as every writer
    if (store_->model(m.name).role != Role::kRollingOut) return -1;  // rolled back since the claim
    std::vector<int64_t> ok;
    std::vector<float> vec;
    std::vector<std::pair<int64_t, std::string>> failures;
    detail::split_embedded(m, eb, ok, vec, failures);
    if (!store_->finish_claim(m.version_id, batch, worker)) return -2;  // taken over: roll back, store nothing
    stored = store_->add_vectors(ok, VersionRows{m.version_id, m.dim, vec.data()}, failures, true);
    t->commit();
  }
  invalidate_local();
  return stored;
}

BackfillReport Gallery::backfill_claimed(const BackfillOptions& opt_in, const ClaimOptions& co, ImageEmbedder& embedder,
                                         const std::function<void(const BackfillProgress&)>& progress,
                                         const std::atomic<bool>* cancel) {
  DT_CHECK(!options_.read_only, "gallery backfill: the gallery was opened read-only");
  DT_CHECK(co.lease_seconds > 0, "gallery backfill: expected a lease > 0 seconds, found ", co.lease_seconds);
  DT_CHECK(opt_in.world >= 1 && opt_in.rank >= 0 && opt_in.rank < opt_in.world,
           "gallery backfill: expected 0 <= rank < world, found rank ", opt_in.rank, " of ", opt_in.world);
  const detail::BackfillGuard one_at_a_time(backfill_running_, dir_);
  const auto t0 = Clock::now();
  BackfillOptions opt = opt_in;
  const std::string worker = co.worker.empty() ? default_worker(opt.rank) : co.worker;
  auto say = [&](const std::string& s) {
    if (co.log) co.log(s);
  };
  std::unique_ptr<Store::Lock> lock;
  {
    std::lock_guard<std::mutex> lk(store_mu_);
    if (!co.gallery_uuid.empty()) {
      const std::string uuid = store_->uuid();
      DT_CHECK(uuid == co.gallery_uuid, "gallery ", dir_, " has uuid ", uuid, "; expected ", co.gallery_uuid,
               " (--gallery-uuid, the gallery rank 0 planned): this worker is pointed at another gallery");
    }
    lock = store_->worker_lock(opt.rank);
    opt.model = detail::backfill_model(*store_, dir_, opt.model).name;
  }
  const ModelInfo m = model(opt.model);
  check_model(opt.model, embedder);
  if (opt.rank == 0) {
    if (opt.retry_failed) {
      std::lock_guard<std::mutex> lk(store_mu_);
      store_->clear_failures(m.version_id);
    }
    plan_backfill(opt);
    std::lock_guard<std::mutex> lk(store_mu_);
    store_->open_claims(m.version_id);  // a plan stored before the claims table
  }
  // On every way out (done, budget, cancel, an error): free the batch this worker holds,
  // so that others need not wait for its lease.
  struct Release {
    Gallery& g;
    const ModelInfo& m;
    const std::string& worker;
    ~Release() {
      try {
        std::lock_guard<std::mutex> lk(g.store_mu_);
        g.store_->release_claims(m.version_id, worker);
      } catch (const std::exception&) {  // the server is gone: the lease expires instead
      }
    }
  } release{*this, m, worker};

  // After a lost connection: open the store again with backoff, take this rank's lock
  // again, and give back what the worker held (its batch in flight is embedded again).
  auto reconnect = [&](const std::string& why) {
    say("lost the connection to " + dir_ + " (" + why + "); reconnecting for up to " +
        std::to_string(static_cast<int>(co.reconnect_seconds)) + " s");
    lock.reset();
    const auto start = Clock::now();
    double wait = 0.25;
    std::string last;
    for (;;) {
      try {
        std::lock_guard<std::mutex> lk(store_mu_);
        reopen_store_locked();
        lock = store_->worker_lock(opt.rank);
        const int64_t freed = store_->release_claims(m.version_id, worker);
        say("reconnected after " + std::to_string(since(start)).substr(0, 4) + " s; " + std::to_string(freed) +
            " claimed batch(es) released to be embedded again");
        return;
      } catch (const Error& e) {
        last = e.what();
      }
      DT_CHECK(since(start) + wait <= co.reconnect_seconds, "gallery backfill: lost the connection to ", dir_, " (", why,
               ") and could not reconnect within ", co.reconnect_seconds, " s (last attempt: ", last,
               "); the batch in flight was not committed: rerun to resume");
      if (cancel && cancel->load()) DT_THROW("gallery backfill: cancelled while reconnecting to ", dir_);
      pause_for(wait);
      wait = std::min(4.0, wait * 2);
    }
  };

  BackfillProgress prog = backfill_progress(m.name);
  BackfillReport rep;
  if (progress) progress(prog);
  const double poll = std::min(0.5, co.lease_seconds / 4);
  auto counted = Clock::now();
  bool stop = false;
  while (!stop) {
    try {
      // A rank lock lost with its connection (the server restarted, the backend was
      // ended) is taken again, as after any lost connection.
      if (!lock->held()) {
        reconnect("the connection holding this rank's lock was lost");
        ++rep.reconnects;
      }
      BatchClaim c;
      {
        std::lock_guard<std::mutex> lk(store_mu_);
        c = store_->claim_batch(m.version_id, worker, co.lease_seconds);
      }
      if (c.batch < 0) {
        if (c.has_claims && c.open == 0) break;  // every batch is done
        DT_CHECK(c.has_claims || since(t0) < co.plan_wait_seconds, "gallery backfill: rank ", opt.rank, " waited ",
                 co.plan_wait_seconds, " s for a plan of '", m.name, "' on ", dir_,
                 "; expected rank 0 to make it (start rank 0 of the same gallery)");
        if ((cancel && cancel->load()) || (opt.max_seconds > 0 && since(t0) >= opt.max_seconds)) break;
        pause_for(poll);  // the other batches are held by live workers (or their leases run)
        continue;
      }
      EmbeddedBatch eb;
      eb.index = c.batch;
      if (!c.items.empty()) {
        const auto refs = image_refs(c.items);
        // Renewals ask the server (PostgreSQL: its now()); one that fails is only
        // reported: the commit checks the claim anyway (-2 below when it was lost). A
        // batch is held for kMaxLeases leases at most, so that an embedding that hangs
        // (a stuck read) does not keep its batch from the other workers for ever. `say`
        // (ClaimOptions::log) is called from the keeper's thread too.
        constexpr int kMaxLeases = 10;
        int renewals = 0;
        LeaseKeeper keeper(co.lease_seconds / 3, [&] {
          const std::string b = "batch " + std::to_string(c.batch);
          if (++renewals > 3 * kMaxLeases) {
            say(b + " has been embedded for " + std::to_string(kMaxLeases) + " leases; no longer renewing its lease, "
                "so another worker may take it over");
            return false;
          }
          try {
            std::lock_guard<std::mutex> lk(store_mu_);
            if (store_->renew_claim(m.version_id, c.batch, worker, co.lease_seconds)) return true;
            say(b + " is no longer this worker's (its lease ran out and another worker took it over); finishing it to "
                "find out at the commit");
            return false;
          } catch (const std::exception& e) {
            say("could not renew the lease of " + b + ": " + e.what());
            return true;
          }
        });
        embedder.embed({refs}, [&](EmbeddedBatch& b) {
          eb = std::move(b);
          return true;
        });
        eb.index = c.batch;
      }
      const int64_t stored = commit_claimed(m, c.batch, worker, eb);
      if (stored == -1) {  // `gallery rollback`: stop, keeping what is stored
        rep.rolled_back = true;
        break;
      }
      if (stored == -2) {  // the lease ran out and another worker took the batch over
        ++rep.lost;
        continue;
      }
      int64_t failed = 0;
      for (size_t i = 0; i < eb.errors.size(); ++i) {
        if (eb.errors[i].empty()) continue;
        ++failed;
        rep.failures.emplace_back(std::to_string(eb.item_ids[i]), eb.errors[i]);
      }
      rep.batches.push_back(c.batch);
      rep.embedded += stored;
      rep.failed += failed;
      prog.done += stored;
      prog.failed += failed;
      if (since(counted) >= 5) {  // the other workers' commits too, now and then (two counts over the plan)
        const BackfillProgress all = backfill_progress(m.name);
        prog.done = all.done;
        prog.failed = all.failed;
        counted = Clock::now();
      }
      prog.this_run = rep.embedded + rep.failed;
      prog.seconds = since(t0);
      prog.items_per_second = prog.seconds > 0 ? double(prog.this_run) / prog.seconds : 0;
      const int64_t left = std::max<int64_t>(0, prog.planned - prog.done - prog.failed);
      prog.eta_seconds = prog.items_per_second > 0 ? double(left) / prog.items_per_second : 0;
      if (progress) progress(prog);
      if (cancel && cancel->load()) rep.cancelled = stop = true;
      if (opt.max_items > 0 && prog.this_run >= opt.max_items) stop = true;
      if (opt.max_seconds > 0 && prog.seconds >= opt.max_seconds) stop = true;
    } catch (const StoreUnreachable& e) {
      reconnect(e.what());
      ++rep.reconnects;
    }
  }
  // Failures by key, as backfill() reports them.
  if (!rep.failures.empty()) {
    std::vector<int64_t> ids;
    for (const auto& f : rep.failures) ids.push_back(std::stoll(f.first));
    const auto rows = items(ids);
    for (size_t i = 0; i < rows.size(); ++i) rep.failures[i].first = rows[i].record.key;
  }
  const BackfillProgress end = backfill_progress(m.name);
  rep.remaining = end.planned - end.done - end.failed;
  rep.finished = rep.remaining == 0;
  rep.seconds = since(t0);
  return rep;
}

}  // namespace dualtune::gallery

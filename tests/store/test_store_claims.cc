// Batch claims (store.h), the many-writers backfill, on both stores: the claim contract
// (each batch to one worker, back after its lease, a commit only by the holder), the
// worker locks (a rank once; single-writer and claimed backfills exclude each other),
// and Gallery::backfill_claimed with two workers, a worker killed (SIGKILL) holding a
// batch, a worker of another gallery, and (PostgreSQL) a connection terminated by the
// server. Expected vectors are computed here from the keys (fixtures::key_vector).
// Leases that must expire in a contract test are given as -1 s: expired when granted,
// so no test waits for a clock except the killed worker's (a 1 s lease) and the slow
// batch that outlasts its 2 s lease twice.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <fstream>
#include <functional>
#include <filesystem>
#include <cstdlib>
#include <set>
#include <thread>

#include "dualtune/gallery/gallery.h"
#include "dualtune/gallery/pg.h"
#include "dualtune/util/error.h"
#include "gallery_fixtures.h"
#include "store_test_env.h"

using namespace dualtune::gallery;
using dualtune::gallery::fixtures::error_of;
using testenv::Kind;

namespace {

class Claims : public testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    const auto* info = testing::UnitTest::GetInstance()->current_test_info();
    where_ = std::make_unique<testenv::Where>(GetParam(), std::string("claims_") + info->name());
    ASSERT_TRUE(where_->ok());
  }
  const std::string& where() const { return where_->str(); }
  std::unique_ptr<testenv::Where> where_;
};

using fixtures::keys_of;
using fixtures::rolling_out_new;

/// Every key's stored "new" vector is key_vector(key, 6, 2), and nothing else is stored.
void expect_backfilled(const std::string& where, const std::vector<std::string>& keys) {
  const auto stored = fixtures::vectors_by_key(where, "new");
  EXPECT_EQ(stored.size(), keys.size());
  for (const auto& k : keys) {
    auto it = stored.find(k);
    ASSERT_NE(it, stored.end()) << k;
    EXPECT_EQ(it->second, fixtures::key_vector(k, 6, 2)) << k;
  }
}

/// KeyEmbedder with a hook before each batch (the n-th batch this object embeds).
class HookedEmbedder : public fixtures::KeyEmbedder {
 public:
  HookedEmbedder() : KeyEmbedder(6, 2, "fp-new") {}
  void embed(const std::vector<std::vector<ImageRef>>& batches, const std::function<bool(EmbeddedBatch&)>& on_batch) override {
    if (before) before(count++);
    KeyEmbedder::embed(batches, on_batch);
  }
  std::function<void(int)> before;
  int count = 0;
};

ClaimOptions lease(double seconds) {
  ClaimOptions c;
  c.lease_seconds = seconds;
  return c;
}

struct TwoRuns {
  BackfillReport rep0, rep1;
  std::string err0, err1;
};

/// Ranks 0 (this thread) and 1 (a thread of its own) of a claimed backfill, each on a
/// Gallery of its own; `rank1_committed` is called after each of rank 1's commits.
TwoRuns two_workers(const std::string& where, const BackfillOptions& o, double lease_s, HookedEmbedder& e0,
                    HookedEmbedder& e1, const std::function<void()>& rank1_committed) {
  TwoRuns r;
  std::thread t1([&] {
    r.err1 = error_of([&] {
      auto o1 = o;
      o1.rank = 1;
      r.rep1 = Gallery::open(where)->backfill_claimed(o1, lease(lease_s), e1, [&](const BackfillProgress& p) {
        if (p.this_run > 0) rank1_committed();
      });
    });
  });
  r.err0 = error_of([&] { r.rep0 = Gallery::open(where)->backfill_claimed(o, lease(lease_s), e0); });
  t1.join();
  return r;
}

}  // namespace

TEST_P(Claims, EachBatchGoesToOneWorkerAndComesBackAfterItsLease) {
  auto g = rolling_out_new(where(), keys_of(10));
  BackfillOptions o;
  o.batch_size = 4;  // batches 0, 1 (4 items each) and 2 (2 items)
  const Plan plan = g->plan_backfill(o);
  const int64_t v = g->model("new").version_id;
  auto s1 = Store::open(where()), s2 = Store::open(where());  // two workers' connections
  EXPECT_EQ(s1->claims(v).size(), 3u);

  const BatchClaim a = s1->claim_batch(v, "w1", 60);
  EXPECT_EQ(a.batch, 0);
  EXPECT_EQ(a.items, std::vector<int64_t>(plan.items.begin(), plan.items.begin() + 4));
  EXPECT_EQ(a.open, 3);
  const BatchClaim b = s2->claim_batch(v, "w2", 60);
  EXPECT_EQ(b.batch, 1);  // batch 0 is w1's until its lease ends
  EXPECT_EQ(b.items, std::vector<int64_t>(plan.items.begin() + 4, plan.items.begin() + 8));
  const BatchClaim c = s1->claim_batch(v, "w3", -1);  // granted already expired
  EXPECT_EQ(c.batch, 2);
  EXPECT_EQ(c.items.size(), 2u);
  const BatchClaim d = s2->claim_batch(v, "w4", 60);
  EXPECT_EQ(d.batch, 2);  // w3's lease ran out: w4 takes the batch over

  {  // w3 commits late: refused, and its transaction (with the vectors) rolled back
    auto t = s1->transaction(true);
    EXPECT_FALSE(s1->finish_claim(v, 2, "w3"));
  }
  {  // w1 commits batch 0: vectors and done in one transaction
    auto t = s1->transaction(true);
    ASSERT_TRUE(s1->finish_claim(v, 0, "w1"));
    std::vector<float> x;
    for (int64_t id : a.items) {
      const auto k = s1->items({id})[0].record.key;
      const auto kv = fixtures::key_vector(k, 6, 2);
      x.insert(x.end(), kv.begin(), kv.end());
    }
    EXPECT_EQ(s1->add_vectors(a.items, {v, 6, x.data()}, {}, true), 4);
    t->commit();
  }
  EXPECT_FALSE([&] {  // a done batch is nobody's any more, not even its old holder's
    auto t = s2->transaction(true);
    return s2->finish_claim(v, 0, "w1");
  }());
  EXPECT_EQ(s2->release_claims(v, "w2"), 1);  // w2 stops early: batch 1 is free at once
  const BatchClaim e = s2->claim_batch(v, "w5", 60);
  EXPECT_EQ(e.batch, 1);
  EXPECT_EQ(e.open, 2);
  const BatchClaim none = s1->claim_batch(v, "w6", 60);
  EXPECT_EQ(none.batch, -1);  // 1 and 2 held, 0 done
  EXPECT_TRUE(none.has_claims);
  EXPECT_EQ(none.open, 2);
  const auto rows = s1->claims(v);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0], std::make_tuple(int64_t{0}, true, std::string("w1")));
  EXPECT_EQ(rows[1], std::make_tuple(int64_t{1}, false, std::string("w5")));
  EXPECT_EQ(rows[2], std::make_tuple(int64_t{2}, false, std::string("w4")));

  // A re-plan is a new batch grid: every claim starts over; batch 0's items, stored, are
  // no longer pending anywhere (the re-plan keeps them in front).
  o.replan = true;
  o.order = "random";
  o.batch_size = 5;
  g->plan_backfill(o);
  const auto fresh = s1->claims(v);
  ASSERT_EQ(fresh.size(), 2u);  // 10 items in batches of 5 (a re-plan takes the new batch size)
  for (const auto& r : fresh) EXPECT_EQ(std::get<2>(r), "");
  const BatchClaim f = s1->claim_batch(v, "w7", 60);
  EXPECT_EQ(f.batch, 0);
  EXPECT_EQ(f.items.size(), 1u);  // positions 0..4: the 4 stored items, then one pending
}

TEST_P(Claims, ARenewedClaimStaysWithItsWorkerAndOnlyItsHolderCanRenewIt) {
  auto g = rolling_out_new(where(), keys_of(8));
  BackfillOptions o;
  o.batch_size = 4;  // batches 0 and 1
  g->plan_backfill(o);
  const int64_t v = g->model("new").version_id;
  auto s1 = Store::open(where()), s2 = Store::open(where());
  EXPECT_EQ(s1->claim_batch(v, "w1", -1).batch, 0);  // granted already expired ...
  EXPECT_TRUE(s1->renew_claim(v, 0, "w1", 60));       // ... and renewed by its holder
  EXPECT_EQ(s2->claim_batch(v, "w2", -1).batch, 1);   // so batch 0 stays w1's
  EXPECT_FALSE(s2->renew_claim(v, 0, "w2", 60));      // not w2's to renew
  EXPECT_EQ(s1->claim_batch(v, "w3", 60).batch, 1);   // w2's lease ran out: w3 takes batch 1 over
  EXPECT_FALSE(s2->renew_claim(v, 1, "w2", 60));      // and w2's renewal comes too late
  {
    auto t = s1->transaction(true);
    ASSERT_TRUE(s1->finish_claim(v, 0, "w1"));
    t->commit();
  }
  EXPECT_FALSE(s1->renew_claim(v, 0, "w1", 60));  // a done batch is nobody's
  EXPECT_EQ(s2->claim_batch(v, "w4", 60).batch, -1);
  const auto rows = s1->claims(v);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0], std::make_tuple(int64_t{0}, true, std::string("w1")));
  EXPECT_EQ(rows[1], std::make_tuple(int64_t{1}, false, std::string("w3")));
}

// A worker whose batch takes several leases to embed keeps it: it renews the lease every
// third of it while it embeds, so the other worker, polling for work every 0.5 s
// meanwhile, never takes the batch over (without the renewals it would after 2 s).
TEST_P(Claims, AWorkerEmbeddingForSeveralLeasesKeepsItsBatch) {
  const auto keys = keys_of(6);
  rolling_out_new(where(), keys);
  BackfillOptions o;
  o.batch_size = 3;  // batches 0 and 1
  o.world = 2;
  constexpr double kLease = 2.0;  // renewed every 0.67 s: a loaded machine has 1.3 s to spare
  // Worker 0 holds its batch until worker 1 has committed the other one, then embeds for
  // two leases; worker 1 starts embedding only once worker 0 holds a batch.
  std::mutex mu;
  std::condition_variable cv;
  bool one_committed = false, zero_claimed = false;
  HookedEmbedder e0, e1;
  e0.before = [&](int) {
    std::unique_lock<std::mutex> lk(mu);
    zero_claimed = true;
    cv.notify_all();
    cv.wait_for(lk, std::chrono::seconds(20), [&] { return one_committed; });
    lk.unlock();
    std::this_thread::sleep_for(std::chrono::duration<double>(2 * kLease));  // a slow batch
  };
  e1.before = [&](int) {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait_for(lk, std::chrono::seconds(20), [&] { return zero_claimed; });
  };
  const auto [rep0, rep1, err0, err1] = two_workers(where(), o, kLease, e0, e1, [&] {
    std::lock_guard<std::mutex> lk(mu);
    one_committed = true;
    cv.notify_all();
  });
  EXPECT_EQ(err0, "(no error)");
  EXPECT_EQ(err1, "(no error)");
  EXPECT_EQ(rep0.lost, 0);
  EXPECT_EQ(e0.count, 1);
  EXPECT_EQ(e1.count, 1) << "worker 1 embedded worker 0's batch too: the lease was not renewed";
  ASSERT_EQ(rep0.batches.size(), 1u);
  ASSERT_EQ(rep1.batches.size(), 1u);
  EXPECT_EQ(std::set<int64_t>({rep0.batches[0], rep1.batches[0]}), (std::set<int64_t>{0, 1}));
  expect_backfilled(where(), keys);
}

TEST_P(Claims, ARankRunsOnceAndSingleWriterAndClaimedBackfillsExcludeEachOther) {
  Gallery::create(where(), {"old", 3, "", ""});
  auto s1 = Store::open(where()), s2 = Store::open(where());
  auto r1 = s1->worker_lock(1);
  auto r2 = s2->worker_lock(2);
  const auto same = error_of([&] { s2->worker_lock(1); });
  EXPECT_NE(same.find("backfill rank 1 is already running"), std::string::npos) << same;
  EXPECT_NE(same.find("RANK"), std::string::npos) << same;
  const auto single = error_of([&] { s2->backfill_lock(); });
  EXPECT_NE(single.find("another backfill is running"), std::string::npos) << single;
  r1.reset();
  r2.reset();
  auto again = s2->worker_lock(1);  // released with its holder
  again.reset();
  auto writer = s1->backfill_lock();
  const auto worker = error_of([&] { s2->worker_lock(3); });
  EXPECT_NE(worker.find("a single-writer backfill is running"), std::string::npos) << worker;
}

TEST_P(Claims, TwoWorkersBackfillOnePlanEveryBatchOnce) {
  auto keys = keys_of(21);
  keys.push_back("missing21");  // recorded as a failure by whichever worker gets it
  rolling_out_new(where(), keys);
  BackfillOptions o;
  o.batch_size = 3;  // 8 batches
  o.world = 2;
  // Both work, whichever starts first: worker 0 embeds its first batch only once worker 1
  // has committed one, and worker 1 its second only once worker 0 holds a batch (else
  // worker 1 could finish all eight before worker 0 has opened the gallery).
  std::mutex mu;
  std::condition_variable cv;
  bool one_committed = false, zero_claimed = false;
  HookedEmbedder e0, e1;
  e0.before = [&](int n) {
    if (n != 0) return;
    std::unique_lock<std::mutex> lk(mu);
    zero_claimed = true;
    cv.notify_all();
    cv.wait_for(lk, std::chrono::seconds(20), [&] { return one_committed; });
  };
  e1.before = [&](int n) {
    if (n != 1) return;
    std::unique_lock<std::mutex> lk(mu);
    cv.wait_for(lk, std::chrono::seconds(20), [&] { return zero_claimed; });
  };
  const auto [rep0, rep1, err0, err1] = two_workers(where(), o, 60, e0, e1, [&] {
    std::lock_guard<std::mutex> lk(mu);
    one_committed = true;
    cv.notify_all();
  });
  EXPECT_EQ(err0, "(no error)");
  EXPECT_EQ(err1, "(no error)");
  EXPECT_TRUE(one_committed);
  EXPECT_GE(rep0.batches.size(), 1u);
  EXPECT_GE(rep1.batches.size(), 1u);
  std::multiset<int64_t> all(rep0.batches.begin(), rep0.batches.end());
  all.insert(rep1.batches.begin(), rep1.batches.end());
  EXPECT_EQ(all, (std::multiset<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}));  // each batch committed once
  EXPECT_EQ(rep0.embedded + rep1.embedded, 21);
  EXPECT_EQ(rep0.failed + rep1.failed, 1);
  EXPECT_TRUE(rep0.finished && rep1.finished);
  EXPECT_EQ(rep0.lost + rep1.lost, 0);
  expect_backfilled(where(), keys_of(21));
  const auto p = Gallery::open(where())->backfill_progress("new");
  EXPECT_EQ(p.planned, 22);
  EXPECT_EQ(p.done, 21);
  EXPECT_EQ(p.failed, 1);
}

TEST_P(Claims, AWorkerKilledHoldingABatchLeavesItToAnotherAfterTheLease) {
  const auto keys = keys_of(12);
  auto g = rolling_out_new(where(), keys);
  BackfillOptions o;
  o.batch_size = 3;  // batches 0..3
  g->plan_backfill(o);
  g.reset();
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // rank 1: commits batch 0, claims batch 1, dies (kill -9) embedding it
    try {
      HookedEmbedder e;
      e.before = [](int n) {
        if (n == 1) ::kill(::getpid(), SIGKILL);
      };
      auto o1 = o;
      o1.rank = 1;
      o1.world = 2;
      ClaimOptions c = lease(1);
      c.worker = "victim";
      Gallery::open(where())->backfill_claimed(o1, c, e);
    } catch (...) {
    }
    ::_exit(3);  // not reached when the kill happens
  }
  int st = 0;
  ASSERT_EQ(::waitpid(child, &st, 0), child);
  ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "status " << st;
  const int64_t v = Gallery::open(where())->model("new").version_id;
  auto rows = Store::open(where())->claims(v);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0], std::make_tuple(int64_t{0}, true, std::string("victim")));
  EXPECT_EQ(rows[1], std::make_tuple(int64_t{1}, false, std::string("victim")));  // held by the dead
  EXPECT_EQ(fixtures::vectors_by_key(where(), "new").size(), 3u);

  HookedEmbedder e;
  auto o0 = o;
  o0.world = 2;
  const auto rep = Gallery::open(where())->backfill_claimed(o0, lease(1), e);
  EXPECT_TRUE(rep.finished);
  EXPECT_EQ(rep.embedded, 9);
  EXPECT_EQ(std::multiset<int64_t>(rep.batches.begin(), rep.batches.end()), (std::multiset<int64_t>{1, 2, 3}));
  EXPECT_EQ(rep.batches.back(), 1);  // the free batches first, the dead worker's after its lease
  expect_backfilled(where(), keys);
}

TEST_P(Claims, AWorkerOfAnotherGalleryOrASecondRankIsRefused) {
  rolling_out_new(where(), keys_of(4));
  auto g = Gallery::open(where());
  fixtures::KeyEmbedder e(6, 2, "fp-new");
  BackfillOptions o;
  ClaimOptions other = lease(60);
  other.gallery_uuid = "0123456789abcdef0123456789abcdef";
  const auto wrong = error_of([&] { g->backfill_claimed(o, other, e); });
  EXPECT_NE(wrong.find("expected 0123456789abcdef0123456789abcdef"), std::string::npos) << wrong;
  EXPECT_NE(wrong.find("pointed at another gallery"), std::string::npos) << wrong;
  EXPECT_EQ(fixtures::vectors_by_key(where(), "new").size(), 0u);

  auto held = Store::open(where())->worker_lock(0);  // rank 0 runs elsewhere
  const auto twice = error_of([&] { g->backfill_claimed(o, lease(60), e); });
  EXPECT_NE(twice.find("backfill rank 0 is already running"), std::string::npos) << twice;
  held.reset();

  ClaimOptions right = lease(60);
  right.gallery_uuid = Store::open(where())->uuid();
  const auto rep = g->backfill_claimed(o, right, e);
  EXPECT_TRUE(rep.finished);
  expect_backfilled(where(), keys_of(4));
}

INSTANTIATE_TEST_SUITE_P(BothStores, Claims, testing::Values(Kind::kSqlite, Kind::kPostgres), testenv::kind_name);

// --- PostgreSQL only ------------------------------------------------------------------------

TEST(ClaimsPostgres, AWorkerWhoseConnectionsAreTerminatedCommitsOnceAndTakesItsRankLockAgain) {
  testenv::Database db;
  ASSERT_FALSE(db.url().empty());
  const auto keys = keys_of(12);
  rolling_out_new(db.url(), keys);
  HookedEmbedder e;
  // While batch 1 is embedded, the server ends every connection of the test database
  // (and the hook waits until they are gone): the commit that follows starts on a dead
  // connection, which reconnects before its first statement (pg::Conn retries a BEGIN
  // sent outside a transaction), so batch 1 is committed once, by its holder; the rank's
  // lock, which lived in the ended session, is then taken again.
  e.before = [&](int n) {
    if (n != 1) return;
    pg::Conn admin(testenv::admin_url());
    admin.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
               pg::Params().add(db.name()));
    for (int i = 0; i < 500; ++i)  // at most 5 s: the backends exit asynchronously
      if (admin.exec("SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                     pg::Params().add(db.name())).get_int(0, 0) == 0)
        break;
      else
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
  };
  BackfillOptions o;
  o.batch_size = 3;
  ClaimOptions c = lease(60);
  std::vector<std::string> said;
  c.log = [&](const std::string& s) { said.push_back(s); };
  const auto rep = Gallery::open(db.url())->backfill_claimed(o, c, e);
  EXPECT_EQ(rep.reconnects, 1);
  EXPECT_TRUE(rep.finished);
  EXPECT_EQ(rep.embedded, 12);
  EXPECT_EQ(e.count, 4);  // 4 batches, each once
  EXPECT_EQ(std::multiset<int64_t>(rep.batches.begin(), rep.batches.end()), (std::multiset<int64_t>{0, 1, 2, 3}));
  ASSERT_EQ(said.size(), 2u);
  EXPECT_NE(said[0].find("the connection holding this rank's lock was lost"), std::string::npos) << said[0];
  EXPECT_NE(said[0].find("reconnecting for up to 30 s"), std::string::npos) << said[0];
  EXPECT_NE(said[1].find("0 claimed batch(es) released"), std::string::npos) << said[1];
  expect_backfilled(db.url(), keys);
}

// A real server restart, on a cluster of this test's own: the server is stopped while
// batch 1 is embedded, so the commit finds no server; the worker says it is reconnecting
// (and the test starts the server again right then, from the log callback: no sleep),
// opens the store again, gives back its claim, embeds batch 1 again and finishes with
// every vector once.
TEST(ClaimsPostgres, AWorkerCarriesOnAcrossAServerRestart) {
  auto cluster = [](const std::string& verb, const std::string& state) {
    const std::string cmd = std::string("bash '") + DUALTUNE_SOURCE_DIR + "/tests/scripts/pg_cluster.sh' " + verb +
                            " '" + state + "' >/dev/null";
    const int rc = std::system(cmd.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  };
  const std::string state = fixtures::temp_dir("claims_restart") + "/cluster";
  ASSERT_EQ(cluster("start", state), 0) << "pg_cluster.sh start failed (PostgreSQL installed? scripts/install_deps.sh)";
  std::string admin;
  std::getline(std::ifstream(state + "/url"), admin);
  pg::Conn(admin).exec("CREATE DATABASE restart");
  const std::string url = admin.substr(0, admin.find('/', admin.find("://") + 3)) + "/restart";
  const auto keys = keys_of(12);
  rolling_out_new(url, keys);
  HookedEmbedder e;
  bool stopped = false;
  e.before = [&](int n) {
    if (n == 1) stopped = cluster("pause", state) == 0;
  };
  BackfillOptions o;
  o.batch_size = 3;
  ClaimOptions c = lease(60);
  std::vector<std::string> said;
  c.log = [&](const std::string& s) {
    said.push_back(s);
    if (s.find("reconnecting") != std::string::npos) cluster("resume", state);
  };
  const auto rep = Gallery::open(url)->backfill_claimed(o, c, e);
  EXPECT_TRUE(stopped);
  EXPECT_EQ(rep.reconnects, 1);
  EXPECT_TRUE(rep.finished);
  EXPECT_EQ(e.count, 5);  // 4 batches, batch 1 twice: its commit met no server
  ASSERT_EQ(said.size(), 2u);
  EXPECT_NE(said[0].find("reconnecting for up to 30 s"), std::string::npos) << said[0];
  EXPECT_NE(said[1].find("1 claimed batch(es) released"), std::string::npos) << said[1];
  expect_backfilled(url, keys);
  cluster("stop", state);
  std::filesystem::remove_all(std::filesystem::path(state).parent_path());
}

TEST(ClaimsPostgres, TwoRolloutsRacingFindEachOtherInsideTheWriteTransaction) {
  testenv::Database db;
  ASSERT_FALSE(db.url().empty());
  Gallery::create(db.url(), {"old", 3, "", ""});
  auto a = Store::open(db.url());
  auto g = Gallery::open(db.url());
  std::string err;
  {
    auto t = a->transaction(true);  // holds write_seq: the rollout below waits for it
    std::thread other([&] { err = error_of([&] { g->rollout({"b", 3, "", ""}); }); });
    pg::Conn watch(db.url());
    bool waiting = false;
    // Until the rollout's connection waits for a lock (the write_seq row's), at most 10 s.
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!waiting && std::chrono::steady_clock::now() < until) {
      waiting = watch.exec("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = $1",
                           pg::Params().add(db.name())).get_int(0, 0) > 0;
      if (!waiting) std::this_thread::yield();
    }
    EXPECT_TRUE(waiting);
    a->add_model("a", 3, "", "", Role::kRollingOut);
    t->commit();
    other.join();
  }
  EXPECT_NE(err.find("model 'a' is already rolling out"), std::string::npos) << err;
  int rolling = 0;
  for (const auto& m : Store::open(db.url())->models()) rolling += m.role == Role::kRollingOut;
  EXPECT_EQ(rolling, 1);
}

TEST(PgUrl, AChildGetsTheUrlWithoutItsPassword) {
  std::string pw;
  EXPECT_EQ(pg::strip_password("postgresql://u:s%40cret@h:5432/db", &pw), "postgresql://u@h:5432/db");
  EXPECT_EQ(pw, "s@cret");  // percent-decoded, as libpq reads it
  EXPECT_EQ(pg::strip_password("postgres://u@h/db?password=x&sslmode=disable", &pw), "postgres://u@h/db?sslmode=disable");
  EXPECT_EQ(pw, "x");
  EXPECT_EQ(pg::strip_password("postgresql://u@h/db?sslmode=disable&password=y", &pw), "postgresql://u@h/db?sslmode=disable");
  EXPECT_EQ(pw, "y");
  EXPECT_EQ(pg::strip_password("postgresql://u@h/db", &pw), "postgresql://u@h/db");
  EXPECT_EQ(pw, "");
}

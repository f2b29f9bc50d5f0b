// Backfill: plans and orders, resume equals uninterrupted, cancellation at batch
// boundaries, bad images reported and skipped, worker shards, model fingerprints, and
// searches running while a backfill writes; the states a backfill went through, scored
// afterwards from its plan.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <set>
#include <thread>

#include "dualtune/gallery/gallery.h"
#include "dualtune/gallery/merge.h"
#include "dualtune/gallery/order.h"
#include "dualtune/gallery/store.h"
#include "dualtune/util/error.h"
#include "gallery_fixtures.h"
#include "store_test_env.h"

using namespace dualtune::gallery;
using dualtune::Error;
using dualtune::gallery::fixtures::vectors_by_key;
using dualtune::gallery::testenv::gallery_at;

namespace {

using dualtune::gallery::fixtures::error_of;

std::vector<std::string> item_keys(int n, const std::vector<int>& bad = {}) {
  std::vector<std::string> keys;
  for (int i = 0; i < n; ++i) {
    const bool is_bad = std::find(bad.begin(), bad.end(), i) != bad.end();
    keys.push_back(std::string(is_bad ? (i % 2 ? "missing" : "corrupt") : "img") + std::to_string(i));
  }
  return keys;
}

/// A gallery of n items added with the old KeyEmbedder (dim 4), new model (dim 6) rolled out.
std::unique_ptr<Gallery> rolled_out(const std::string& dir, const std::vector<std::string>& keys) {
  auto g = Gallery::create(gallery_at(dir), {"old", 4, "", "fp-old"});
  fixtures::KeyEmbedder old(4, 1, "fp-old");
  // Bad keys fail in add too, so they are imported with a vector instead.
  std::vector<std::string> good;
  for (const auto& k : keys)
    if (k.rfind("img", 0) == 0) good.push_back(k);
  g->add_images(fixtures::records(good), {{"old", &old}}, 16, false);
  std::vector<std::string> bad;
  std::vector<float> x;
  for (const auto& k : keys)
    if (k.rfind("img", 0) != 0) {
      bad.push_back(k);
      const auto v = fixtures::key_vector(k, 4, 1);
      x.insert(x.end(), v.begin(), v.end());
    }
  if (!bad.empty()) g->import_vectors("old", fixtures::records(bad), 4, x.data(), false);
  g->rollout({"new", 6, "", "fp-new"});
  return g;
}

}  // namespace

TEST(Backfill, ResumedInStepsEqualsUninterrupted) {
  const auto keys = item_keys(53);
  const auto a = fixtures::temp_dir("bf_once"), b = fixtures::temp_dir("bf_steps");
  fixtures::KeyEmbedder emb(6, 2, "fp-new");
  BackfillOptions opt;
  opt.order = "random";
  opt.seed = 9;
  opt.batch_size = 8;
  {
    auto g = rolled_out(a, keys);
    const auto r = g->backfill(opt, emb);
    EXPECT_TRUE(r.finished);
    EXPECT_EQ(r.embedded, 53);
  }
  {
    auto g = rolled_out(b, keys);
    BackfillOptions step = opt;
    step.max_items = 10;  // stops after the batch that reaches 10: 2 batches, 16 items
    const auto r1 = g->backfill(step, emb);
    EXPECT_EQ(r1.embedded, 16);
    EXPECT_EQ(r1.remaining, 37);
    EXPECT_FALSE(r1.finished);
    const auto st = g->status();
    EXPECT_EQ(st.backfill.done, 16);
    EXPECT_EQ(st.backfill.planned, 53);
    EXPECT_NEAR(st.models[1].backfilled, 16.0 / 53, 1e-12);
    // Resuming with a different order is refused without --replan.
    BackfillOptions other = opt;
    other.order = "uncertainty";
    EXPECT_NE(error_of([&] { g->backfill(other, emb); }).find("a plan with order 'random' exists"), std::string::npos);
    // A fresh object (as another process would) finishes it.
    g.reset();
    auto g2 = Gallery::open(gallery_at(b));
    step.max_items = 0;
    const auto r2 = g2->backfill(step, emb);
    EXPECT_TRUE(r2.finished);
    EXPECT_EQ(r2.embedded, 37);
  }
  EXPECT_EQ(vectors_by_key(gallery_at(a), "new"), vectors_by_key(gallery_at(b), "new"));
  Plan pa, pb;
  ASSERT_TRUE(Store::open(gallery_at(a), true)->load_plan(Store::open(gallery_at(a), true)->model("new").version_id, pa));
  ASSERT_TRUE(Store::open(gallery_at(b), true)->load_plan(Store::open(gallery_at(b), true)->model("new").version_id, pb));
  EXPECT_EQ(pa.items, pb.items);
}

TEST(Backfill, CancelStopsAtTheNextBatchBoundaryAndProgressIsMonotone) {
  const auto dir = fixtures::temp_dir("bf_cancel");
  auto g = rolled_out(dir, item_keys(40));
  fixtures::KeyEmbedder emb(6, 2, "fp-new");
  BackfillOptions opt;
  opt.order = "random";
  opt.batch_size = 5;
  std::atomic<bool> cancel{false};
  std::vector<BackfillProgress> seen;
  const auto r = g->backfill(opt, emb, [&](const BackfillProgress& p) {
    seen.push_back(p);
    if (p.this_run >= 10) cancel = true;  // e.g. SIGTERM arriving during batch 2
  }, &cancel);
  EXPECT_TRUE(r.cancelled);
  EXPECT_EQ(r.embedded, 10);
  EXPECT_EQ(g->backfill_progress("new").done, 10);
  for (size_t i = 1; i < seen.size(); ++i) EXPECT_GE(seen[i].done, seen[i - 1].done);
  EXPECT_EQ(seen.back().planned, 40);
  EXPECT_GT(seen.back().items_per_second, 0);
}

TEST(Backfill, MissingAndCorruptImagesAreReportedSkippedAndRetriedOnRequest) {
  const auto dir = fixtures::temp_dir("bf_bad");
  auto g = rolled_out(dir, item_keys(30, {3, 4, 17}));
  fixtures::KeyEmbedder emb(6, 2, "fp-new");
  BackfillOptions opt;
  opt.batch_size = 8;
  opt.order = "random";
  const auto r = g->backfill(opt, emb);
  EXPECT_EQ(r.embedded, 27);
  EXPECT_EQ(r.failed, 3);
  EXPECT_TRUE(r.finished);
  std::set<std::string> failed;
  for (const auto& [k, e] : r.failures) {
    failed.insert(k);
    EXPECT_NE(e.find(k), std::string::npos);
  }
  EXPECT_EQ(failed, (std::set<std::string>{"missing3", "corrupt4", "missing17"}));
  EXPECT_EQ(g->status().backfill.failed, 3);
  // Not retried by default; retried with retry_failed (and fail again).
  EXPECT_EQ(g->backfill(opt, emb).failed, 0);
  opt.retry_failed = true;
  EXPECT_EQ(g->backfill(opt, emb).failed, 3);
  // The gallery cannot drop the old model while 3 items lack the new embedding.
  EXPECT_NE(error_of([&] { g->retire("old"); }).find("3 of 30 items"), std::string::npos);
}

TEST(Backfill, WorkerShardsPartitionThePendingBatches) {
  const auto dir = fixtures::temp_dir("bf_shards");
  auto g = rolled_out(dir, item_keys(47));
  BackfillOptions opt;
  opt.order = "random";
  opt.batch_size = 4;
  g->plan_backfill(opt);
  std::set<int64_t> items, batches;
  size_t total = 0;
  for (int r = 0; r < 3; ++r) {
    opt.rank = r;
    opt.world = 3;
    for (const auto& b : g->pending_batches(opt)) {
      EXPECT_TRUE(batches.insert(b.index).second);
      for (const auto& it : b.items) {
        items.insert(it.item_id);
        EXPECT_FALSE(it.key.empty());
        ++total;
      }
    }
  }
  EXPECT_EQ(batches.size(), 12u);  // ceil(47 / 4)
  EXPECT_EQ(items.size(), 47u);
  EXPECT_EQ(total, 47u);
}

TEST(Backfill, RefusesAModelWhoseFingerprintOrSizeDiffers) {
  const auto dir = fixtures::temp_dir("bf_fp");
  auto g = rolled_out(dir, item_keys(5));
  fixtures::KeyEmbedder retrained(6, 2, "fp-retrained"), wide(8, 2, "fp-new");
  const auto e1 = error_of([&] { g->backfill({}, retrained); });
  EXPECT_NE(e1.find("registered with fingerprint fp-new"), std::string::npos) << e1;
  EXPECT_NE(e1.find("the model given has fp-retrained"), std::string::npos) << e1;
  EXPECT_NE(error_of([&] { g->backfill({}, wide); }).find("embedding size 6, the model given embeds 8"), std::string::npos);
}

TEST(Backfill, UncertaintyOrderPutsTheLargestPredictedErrorFirst) {
  const auto dir = fixtures::temp_dir("bf_order");
  const auto keys = item_keys(60);
  auto g = rolled_out(dir, keys);
  // Training pairs: new = old rotated by an angle that grows with the old norm, so the
  // compatibility error is a function of log-norm the ridge model can learn.
  const int64_t n = 400;
  std::vector<float> old_t, new_t;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(0.5f, 3.f);
  for (int64_t i = 0; i < n; ++i) {
    const float r = u(rng);
    const float theta = 0.3f * std::log(r) + 0.4f;
    const float o[4] = {r, 0, 0, 0};
    const float w[6] = {std::cos(theta), std::sin(theta), 0, 0, 0, 0};
    old_t.insert(old_t.end(), o, o + 4);
    new_t.insert(new_t.end(), w, w + 6);
  }
  const auto fit = g->fit_transition("new", n, old_t.data(), new_t.data(), nullptr);
  EXPECT_GT(fit.predictor.train_corr, 0.99);
  const Plan plan = g->plan_backfill({});
  EXPECT_EQ(plan.order, "uncertainty");  // the default once a predictor is stored
  // Independently: predicted score of each item from its stored old vector, descending.
  auto s = Store::open(gallery_at(dir), true);
  std::vector<uint8_t> has;
  const auto old = s->vectors_of(s->model("old").version_id, plan.items, has);
  const auto pred = fit.predictor.predict(static_cast<int64_t>(plan.items.size()), old.data());
  for (size_t i = 1; i < pred.size(); ++i) EXPECT_GE(pred[i - 1], pred[i]);
}

TEST(Backfill, SearchesRunningDuringABackfillAlwaysFindEveryItem) {
  const auto dir = fixtures::temp_dir("bf_concurrent");
  const auto keys = item_keys(120);
  auto g = rolled_out(dir, keys);
  // The new model's vector of an item starts with its old one (same salt): a new query
  // equal to an item's vector scores 1.0 against that item whichever version it holds.
  fixtures::KeyEmbedder emb(6, 1, "fp-new");
  emb.delay = std::chrono::milliseconds(5);
  std::atomic<bool> done{false};
  std::atomic<int> searches{0}, misses{0}, errors{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&, t] {
      int i = t;
      while (!done) {
        const std::string& key = keys[static_cast<size_t>(i++ % 120)];
        const auto q = fixtures::key_vector(key, 6, 1);
        try {
          SearchOptions o;
          o.k = 3;
          o.merge = Merge::kRaw;
          const auto r = g->search("new", 1, q.data(), 6, o);
          if (r.ids[0] < 0 || g->items({r.ids[0]})[0].record.key != key || std::fabs(r.scores[0] - 1.f) > 1e-5) ++misses;
        } catch (const Error&) {
          ++errors;
        }
        ++searches;
      }
    });
  }
  BackfillOptions opt;
  opt.order = "random";
  opt.batch_size = 6;
  const auto r = g->backfill(opt, emb);
  done = true;
  for (auto& t : readers) t.join();
  EXPECT_TRUE(r.finished);
  EXPECT_GT(searches.load(), 20);
  EXPECT_EQ(misses.load(), 0);
  EXPECT_EQ(errors.load(), 0);
}

TEST(BackfillOrder, RandomIsASeededPermutationAndScoreTiesGoByItemId) {
  const std::vector<int64_t> ids{10, 11, 12, 13, 14, 15};
  const auto a = random_order(ids, 3), b = random_order(ids, 3), c = random_order(ids, 4);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(std::set<int64_t>(a.begin(), a.end()), std::set<int64_t>(ids.begin(), ids.end()));
  EXPECT_EQ(order_by_score_desc({5, 3, 9, 1}, {0.5, 0.9, 0.5, 0.1}), (std::vector<int64_t>{3, 5, 9, 1}));
}

namespace {

/// 40 labelled items (4 classes), old model (dim 4) added, new model (dim 6) rolled out;
/// queries: every item's new-model vector (leave-one-out), keyed like the demo's.
struct StatesGallery {
  std::vector<std::string> keys;
  std::vector<float> queries;
  std::unique_ptr<Gallery> g;
  explicit StatesGallery(const std::string& dir) {
    std::vector<std::string> labels;
    for (int i = 0; i < 40; ++i) {
      keys.push_back("img" + std::to_string(i));
      labels.push_back("c" + std::to_string(i % 4));
      const auto v = fixtures::key_vector(keys.back(), 6, 2);
      queries.insert(queries.end(), v.begin(), v.end());
    }
    g = Gallery::create(gallery_at(dir), {"old", 4, "", "fp-old"});
    fixtures::KeyEmbedder old(4, 1, "fp-old");
    g->add_images(fixtures::records(keys, labels), {{"old", &old}}, 16, false);
    g->rollout({"new", 6, "", "fp-new"});
  }
};

}  // namespace

TEST(BackfillStates, ScoredAfterwardsFromThePlanEqualEachStateScoredWhenItWasReached) {
  StatesGallery s(fixtures::temp_dir("states"));
  fixtures::KeyEmbedder emb(6, 2, "fp-new");
  const std::vector<Merge> merges{Merge::kRaw, Merge::kRank, Merge::kAligned};
  BackfillOptions bo;
  bo.order = "random";
  bo.seed = 3;
  bo.batch_size = 5;
  bo.max_items = 10;  // two batches per step
  std::vector<std::vector<CurvePoint>> live{s.g->evaluate_state("new", 40, s.queries.data(), s.keys, merges)};
  std::vector<int64_t> counts{0};
  for (int step = 0; step < 10; ++step) {
    const auto r = s.g->backfill(bo, emb);
    counts.push_back(counts.back() + r.embedded);
    live.push_back(s.g->evaluate_state("new", 40, s.queries.data(), s.keys, merges));
    if (r.finished) break;
  }
  ASSERT_EQ(counts, (std::vector<int64_t>{0, 10, 20, 30, 40}));
  const auto later = s.g->evaluate_backfill_states("new", 40, s.queries.data(), s.keys, merges, counts);
  ASSERT_EQ(later.size(), live.size());
  for (size_t k = 0; k < live.size(); ++k) {
    ASSERT_EQ(later[k].size(), merges.size());
    for (size_t m = 0; m < merges.size(); ++m) {
      SCOPED_TRACE("state " + std::to_string(k) + ", merge " + merge_name(merges[m]));
      EXPECT_EQ(later[k][m].backfilled, counts[k]);
      EXPECT_EQ(later[k][m].fraction, live[k][m].fraction);
      EXPECT_EQ(later[k][m].queries, 40);
      EXPECT_EQ(later[k][m].queries, live[k][m].queries);
      // Bit-identical: the same items are scored new/new at each state, in one pass.
      EXPECT_EQ(later[k][m].map, live[k][m].map);
      EXPECT_EQ(later[k][m].top1, live[k][m].top1);
    }
  }
  // The states differ (otherwise the comparison above would prove little).
  EXPECT_NE(live.front()[0].map, live[2][0].map);
  EXPECT_NE(live[2][0].map, live.back()[0].map);
}

TEST(BackfillStates, AStateBeyondTheEmbeddedPartOfThePlanIsAnError) {
  StatesGallery s(fixtures::temp_dir("states_partial"));
  fixtures::KeyEmbedder emb(6, 2, "fp-new");
  BackfillOptions bo;
  bo.order = "random";
  bo.batch_size = 5;
  bo.max_items = 10;
  EXPECT_EQ(s.g->backfill(bo, emb).embedded, 10);
  const std::vector<Merge> raw{Merge::kRaw};
  EXPECT_EQ(s.g->evaluate_backfill_states("new", 40, s.queries.data(), s.keys, raw, {0, 10}).size(), 2u);
  EXPECT_NE(error_of([&] { s.g->evaluate_backfill_states("new", 40, s.queries.data(), s.keys, raw, {0, 20}); })
                .find("the state after 20 backfilled items needs the 'new' embedding of the plan's item at position 10"),
            std::string::npos);
  EXPECT_NE(error_of([&] { s.g->evaluate_backfill_states("new", 40, s.queries.data(), s.keys, raw, {41}); })
                .find("a backfill state of 41 items, expected 0..40"),
            std::string::npos);
}

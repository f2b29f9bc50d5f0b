// The Gallery on both stores: import and exact search (scores checked against cosines
// computed here), a backfill stopped and resumed (every vector the embedder's, failures
// recorded), a second process's gallery object seeing writes at its next search, and a
// rollback from another gallery object stopping a running backfill (history recorded).
#include <gtest/gtest.h>

#include <cmath>

#include "dualtune/gallery/gallery.h"
#include "dualtune/util/error.h"
#include "gallery_fixtures.h"
#include "store_test_env.h"

using namespace dualtune::gallery;
using testenv::Kind;

namespace {

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) ab += double(a[i]) * b[i], aa += double(a[i]) * a[i], bb += double(b[i]) * b[i];
  return ab / std::sqrt(aa * bb);
}

class GalleryOnStore : public testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    const auto* info = testing::UnitTest::GetInstance()->current_test_info();
    where_ = std::make_unique<testenv::Where>(GetParam(), std::string("gstore_") + info->name());
    ASSERT_TRUE(where_->ok());
  }
  const std::string& where() const { return where_->str(); }
  std::unique_ptr<testenv::Where> where_;
};

using fixtures::keys_of;
using fixtures::rolling_out_new;

}  // namespace

TEST_P(GalleryOnStore, ImportedVectorsAreSearchedExactly) {
  const int n = 30, d = 5;
  auto g = Gallery::create(where(), {"old", d, "", ""});
  const auto keys = keys_of(n);
  std::vector<float> x;
  for (const auto& k : keys) {
    const auto v = fixtures::key_vector(k, d, 3);
    x.insert(x.end(), v.begin(), v.end());
  }
  EXPECT_EQ(g->import_vectors("old", fixtures::records(keys), d, x.data(), false, 7).added, n);
  // Query: item 11's own vector. The ranking is by cosine, computed here for every item.
  const auto q = fixtures::key_vector(keys[11], d, 3);
  std::vector<std::pair<double, std::string>> want;
  for (const auto& k : keys) want.emplace_back(cosine(q, fixtures::key_vector(k, d, 3)), k);
  std::sort(want.begin(), want.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  SearchOptions o;
  o.k = 5;
  const auto r = g->search("old", 1, q.data(), d, o);
  const auto rows = g->items(r.ids);
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[0].record.key, keys[11]);
  EXPECT_NEAR(r.scores[0], 1.0, 1e-5);
  for (int j = 0; j < 5; ++j) {
    EXPECT_EQ(rows[j].record.key, want[j].second) << j;
    EXPECT_NEAR(r.scores[j], want[j].first, 1e-5) << j;
  }
  const auto st = g->status();
  EXPECT_EQ(st.items, n);
  ASSERT_EQ(st.models.size(), 1u);
  EXPECT_EQ(st.models[0].embeddings, n);
}

TEST_P(GalleryOnStore, BackfillStoppedAndResumedStoresTheEmbeddersVectors) {
  const int n = 22;
  auto keys = keys_of(n);
  keys.push_back("missing22");  // fails in the new model's embedder: recorded, skipped
  auto g = rolling_out_new(where(), keys);
  fixtures::KeyEmbedder nw(6, 2, "fp-new");
  BackfillOptions o;
  o.batch_size = 4;
  o.seed = 5;
  o.max_items = 8;  // stops after two batches
  const auto first = g->backfill(o, nw);
  EXPECT_EQ(first.embedded + first.failed, 8);
  EXPECT_FALSE(first.finished);
  o.max_items = 0;
  const auto rest = Gallery::open(where())->backfill(o, nw);  // resumed by another object
  EXPECT_TRUE(rest.finished);
  EXPECT_EQ(first.embedded + rest.embedded, n);
  EXPECT_EQ(first.failed + rest.failed, 1);
  const auto stored = fixtures::vectors_by_key(where(), "new");
  ASSERT_EQ(stored.size(), static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) EXPECT_EQ(stored.at(keys[i]), fixtures::key_vector(keys[i], 6, 2)) << keys[i];
  const auto p = g->backfill_progress("new");
  EXPECT_EQ(p.planned, n + 1);
  EXPECT_EQ(p.done, n);
  EXPECT_EQ(p.failed, 1);
}

TEST_P(GalleryOnStore, AReaderSeesAnotherWritersCommitAtItsNextSearch) {
  auto w = Gallery::create(where(), {"old", 3, "", ""});
  const float a[3] = {1, 0, 0}, b[3] = {0, 1, 0};
  w->import_vectors("old", fixtures::records({"a"}), 3, a, false);
  OpenOptions ro;
  ro.read_only = true;
  auto r = Gallery::open(where(), ro);
  SearchOptions o;
  o.k = 2;
  auto res = r->search("old", 1, b, 3, o);
  EXPECT_EQ(res.ids[1], -1);  // one item so far
  w->import_vectors("old", fixtures::records({"b"}), 3, b, false);
  res = r->search("old", 1, b, 3, o);
  EXPECT_EQ(r->items({res.ids[0]})[0].record.key, "b");
  EXPECT_NEAR(res.scores[0], 1.0, 1e-6);
  EXPECT_NEAR(res.scores[1], 0.0, 1e-6);  // a ⟂ b
}

TEST_P(GalleryOnStore, ARollbackFromAnotherConnectionStopsTheBackfillAndARolloutResumesIt) {
  const int n = 20;
  const auto keys = keys_of(n);
  auto g = rolling_out_new(where(), keys);
  fixtures::KeyEmbedder nw(6, 2, "fp-new");
  BackfillOptions o;
  o.batch_size = 5;
  auto other = Gallery::open(where());  // another connection, as another process
  int calls = 0;
  const auto rep = g->backfill(o, nw, [&](const BackfillProgress& p) {
    if (++calls == 2 && p.done == 5) other->rollback();
  });
  // The next commit_batch found 'new' rolled back (-1): one batch of 5 kept, 15 left.
  EXPECT_TRUE(rep.rolled_back);
  EXPECT_FALSE(rep.finished);
  EXPECT_EQ(rep.embedded, 5);
  EXPECT_EQ(g->model("new").role, Role::kRolledBack);
  EXPECT_EQ(fixtures::vectors_by_key(where(), "new").size(), 5u);
  EmbeddedBatch late;  // a batch handed out before the rollback, committed after it
  const ItemRow first = g->list_items(0, 1)[0];
  late.item_ids = {first.id};
  late.vectors = fixtures::key_vector(first.record.key, 6, 2);
  late.errors = {""};
  EXPECT_EQ(g->commit_batch("new", late), -1);

  g->rollout({"new", 6, "", "fp-new"});  // the same model again: resumes
  const auto rest = g->backfill(o, nw);
  EXPECT_TRUE(rest.finished);
  EXPECT_EQ(rest.embedded, n - 5);  // the 5 kept are not embedded again
  const auto stored = fixtures::vectors_by_key(where(), "new");
  ASSERT_EQ(stored.size(), static_cast<size_t>(n));
  for (const auto& k : keys) EXPECT_EQ(stored.at(k), fixtures::key_vector(k, 6, 2)) << k;
  const auto h = Gallery::open(where())->history();
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[0].event + " " + h[0].model, "rollout new");
  EXPECT_EQ(h[1].event + " " + h[1].model, "rollback new");
  EXPECT_EQ(h[1].note, "kept 5 of 20 embeddings for a later rollout");
  EXPECT_EQ(h[2].event + " " + h[2].model, "rollout new");
  EXPECT_EQ(h[2].note, "resumed: 5 of 20 items already embedded");
}

INSTANTIATE_TEST_SUITE_P(BothStores, GalleryOnStore, testing::Values(Kind::kSqlite, Kind::kPostgres), testenv::kind_name);

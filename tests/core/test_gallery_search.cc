// Mixed-version search: scores against hand-computed values, the three merges, old
// queries, retire, approximate indexes and the index caches.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>

#include "dualtune/gallery/gallery.h"
#include "dualtune/gallery/store.h"
#include "dualtune/util/error.h"
#include "gallery_fixtures.h"
#include "store_test_env.h"

using namespace dualtune::gallery;
using dualtune::Error;
namespace fs = std::filesystem;

namespace {

using dualtune::gallery::fixtures::error_of;
using dualtune::gallery::testenv::gallery_at;

// Old model: 2-d, new model: 3-d. Items A=(1,0), B=(0,1), C=(1,1) (old); B is backfilled
// with new (0,1,0).
std::unique_ptr<Gallery> abc_gallery(const std::string& dir) {
  auto g = Gallery::create(gallery_at(dir), {"old", 2, "", ""});
  const float old_v[6] = {1, 0, 0, 1, 1, 1};
  g->import_vectors("old", fixtures::records({"A", "B", "C"}, {"x", "y", "x"}), 2, old_v, false);
  g->rollout({"new", 3, "", ""});
  const float new_b[3] = {0, 1, 0};
  g->import_vectors("new", fixtures::records({"B"}), 3, new_b, false);
  return g;
}

int64_t id_of(Gallery& g, const std::string& key) {
  auto s = Store::open(g.location(), true);
  return s->find_keys({key})[0];
}

}  // namespace

TEST(MixedSearch, NewQueryScoresNewEmbeddingWhenPresentElseOldPrefix) {
  const auto dir = fixtures::temp_dir("search_hand");
  auto g = abc_gallery(dir);
  // q = (2, 1, 0). vs new B: 1/√5 = 0.4472 (3 components). vs old, first 2 components
  // (2,1)/√5: A = 2/√5 = 0.8944, C = 3/√10 = 0.9487. B's old vector is not used.
  const float q[3] = {2, 1, 0};
  SearchOptions o;
  o.k = 4;
  o.merge = Merge::kRaw;
  const auto r = g->search("new", 1, q, 3, o);
  const int64_t A = id_of(*g, "A"), B = id_of(*g, "B"), C = id_of(*g, "C");
  EXPECT_EQ(r.ids, (std::vector<int64_t>{C, A, B, -1}));
  EXPECT_NEAR(r.scores[0], 3 / std::sqrt(10.0), 1e-6);
  EXPECT_NEAR(r.scores[1], 2 / std::sqrt(5.0), 1e-6);
  EXPECT_NEAR(r.scores[2], 1 / std::sqrt(5.0), 1e-6);
  const auto old_v = g->model("old").version_id, new_v = g->model("new").version_id;
  EXPECT_EQ(r.versions, (std::vector<int32_t>{int32_t(old_v), int32_t(old_v), int32_t(new_v), -1}));
  // An old query (clients not upgraded) sees only old vectors, B's included: (0,1).
  const float qo[2] = {0, 1};
  const auto ro = g->search("old", 1, qo, 2, o);
  EXPECT_EQ(ro.ids, (std::vector<int64_t>{B, C, A, -1}));
  EXPECT_NEAR(ro.scores[1], 1 / std::sqrt(2.0), 1e-6);
  EXPECT_EQ(ro.versions[0], int32_t(old_v));
  // Wrong query dimension.
  EXPECT_NE(error_of([&] { g->search("new", 1, qo, 2, o); }).find("must have dimension 3, found 2"), std::string::npos);
}

TEST(MixedSearch, CalibratedAndRankMergesGiveTheHandComputedKeys) {
  const auto dir = fixtures::temp_dir("search_merge");
  auto g = abc_gallery(dir);
  const int64_t A = id_of(*g, "A"), B = id_of(*g, "B"), C = id_of(*g, "C");
  {
    auto s = Store::open(gallery_at(dir));
    const auto n = s->model("new"), o = s->model("old");
    s->save_fit("calibration", n.id, n.version_id, Calibration{10, 5, 1, 1}.to_json());
    s->save_fit("calibration", n.id, o.version_id, Calibration{10, -1, 1, 1}.to_json());
  }
  g->refresh();
  const float q[3] = {2, 1, 0};
  SearchOptions opt;
  opt.k = 3;
  opt.merge = Merge::kCalibrated;
  // keys: B 10·0.4472 + 5 = 9.472; C 10·0.9487 − 1 = 8.487; A 10·0.8944 − 1 = 7.944.
  const auto rc = g->search("new", 1, q, 3, opt);
  EXPECT_EQ(rc.ids, (std::vector<int64_t>{B, C, A}));
  EXPECT_NEAR(rc.keys[0], 10 / std::sqrt(5.0) + 5, 1e-5);
  EXPECT_NEAR(rc.keys[1], 30 / std::sqrt(10.0) - 1, 1e-5);
  EXPECT_NEAR(rc.keys[2], 20 / std::sqrt(5.0) - 1, 1e-5);
  EXPECT_NEAR(rc.scores[0], 1 / std::sqrt(5.0), 1e-6);  // scores stay cosines
  // Rank: new version holds 1 active item, old 2 (A, C): B 1 − ½/1 = 0.5, C 1 − ½/2 =
  // 0.75, A 1 − 1½/2 = 0.25.
  opt.merge = Merge::kRank;
  const auto rr = g->search("new", 1, q, 3, opt);
  EXPECT_EQ(rr.ids, (std::vector<int64_t>{C, B, A}));
  EXPECT_FLOAT_EQ(rr.keys[0], 0.75f);
  EXPECT_FLOAT_EQ(rr.keys[1], 0.5f);
  EXPECT_FLOAT_EQ(rr.keys[2], 0.25f);
  // The default is calibrated when the calibrations are stored.
  EXPECT_EQ(g->resolve_merge("new", std::nullopt), Merge::kCalibrated);
}

TEST(MixedSearch, DefaultMergeWithoutCalibrationIsRawAndCalibratedIsRefused) {
  const auto dir = fixtures::temp_dir("search_nocal");
  auto g = abc_gallery(dir);
  EXPECT_EQ(g->resolve_merge("new", std::nullopt), Merge::kRaw);
  EXPECT_NE(error_of([&] { g->resolve_merge("new", Merge::kCalibrated); }).find("needs its score calibrations"),
            std::string::npos);
}

TEST(MixedSearch, MatchesBruteForceOverRandomMixedGallery) {
  const auto dir = fixtures::temp_dir("search_brute");
  const int64_t n = 400, d_old = 6, d_new = 9;
  auto g = Gallery::create(gallery_at(dir), {"old", d_old, "", ""});
  std::vector<std::string> keys;
  std::vector<float> xo, xn;
  for (int64_t i = 0; i < n; ++i) {
    keys.push_back("k" + std::to_string(i));
    auto o = fixtures::key_vector(keys.back(), d_old, 1), w = fixtures::key_vector(keys.back(), d_new, 2);
    xo.insert(xo.end(), o.begin(), o.end());
    xn.insert(xn.end(), w.begin(), w.end());
  }
  g->import_vectors("old", fixtures::records(keys), d_old, xo.data(), false);
  g->rollout({"new", d_new, "", ""});
  std::vector<std::string> back;
  std::vector<float> xb;
  for (int64_t i = 0; i < n; i += 3) {
    back.push_back(keys[i]);
    xb.insert(xb.end(), xn.begin() + i * d_new, xn.begin() + (i + 1) * d_new);
  }
  g->import_vectors("new", fixtures::records(back), d_new, xb.data(), false);
  const int64_t nq = 7, k = 12;
  std::vector<float> q;
  for (int64_t i = 0; i < nq; ++i) {
    auto v = fixtures::key_vector("query" + std::to_string(i), d_new, 3);
    q.insert(q.end(), v.begin(), v.end());
  }
  SearchOptions opt;
  opt.k = k;
  opt.merge = Merge::kRaw;
  const auto r = g->search("new", nq, q.data(), d_new, opt);
  // Brute force in double: cosine on the new vector (every 3rd item) or on the first 6
  // components of the old one.
  auto cos = [](const float* a, const float* b, int64_t d) {
    double ab = 0, aa = 0, bb = 0;
    for (int64_t c = 0; c < d; ++c) ab += double(a[c]) * b[c], aa += double(a[c]) * a[c], bb += double(b[c]) * b[c];
    return ab / std::sqrt(aa * bb);
  };
  auto s = Store::open(gallery_at(dir), true);
  const auto ids = s->find_keys(keys);
  for (int64_t qi = 0; qi < nq; ++qi) {
    std::vector<std::pair<double, int64_t>> all;
    for (int64_t i = 0; i < n; ++i) {
      const double sc = i % 3 == 0 ? cos(q.data() + qi * d_new, xn.data() + i * d_new, d_new)
                                   : cos(q.data() + qi * d_new, xo.data() + i * d_old, d_old);
      all.emplace_back(sc, ids[i]);
    }
    std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
    for (int64_t j = 0; j < k; ++j) {
      EXPECT_EQ(r.ids[qi * k + j], all[j].second) << "query " << qi << " rank " << j;
      EXPECT_NEAR(r.scores[qi * k + j], all[j].first, 1e-5);
    }
  }
  // Exhaustive IVF (nprobe = nlist) is exact; HNSW recall@12 is high on 400 items.
  opt.index = "ivf";
  opt.ann.nlist = 4;
  opt.ann.nprobe = 4;
  opt.ann.overfetch = 40;
  const auto ivf = g->search("new", nq, q.data(), d_new, opt);
  EXPECT_EQ(ivf.ids, r.ids);
  opt.index = "hnsw";
  const auto hnsw = g->search("new", nq, q.data(), d_new, opt);
  int64_t hit = 0;
  for (int64_t qi = 0; qi < nq; ++qi)
    for (int64_t j = 0; j < k; ++j)
      hit += std::count(r.ids.begin() + qi * k, r.ids.begin() + (qi + 1) * k, hnsw.ids[qi * k + j]);
  EXPECT_GE(double(hit) / double(nq * k), 0.9);
}

TEST(Retire, RefusedUntilEveryItemHasTheNewEmbeddingThenDropsTheOldOnes) {
  const auto dir = fixtures::temp_dir("retire");
  auto g = abc_gallery(dir);
  const auto msg = error_of([&] { g->retire("old"); });
  EXPECT_NE(msg.find("2 of 3 items have no embedding of 'new' yet"), std::string::npos) << msg;
  const float rest[6] = {1, 0, 0, 1, 1, 0};
  g->import_vectors("new", fixtures::records({"A", "C"}), 3, rest, false);
  g->retire("old");
  const auto st = g->status();
  ASSERT_EQ(st.models.size(), 2u);
  EXPECT_EQ(st.models[0].model.role, Role::kRetired);
  EXPECT_EQ(st.models[0].embeddings, 0);
  EXPECT_EQ(st.models[1].model.role, Role::kDeployed);
  EXPECT_DOUBLE_EQ(st.models[1].backfilled, 1.0);
  const float q[3] = {2, 1, 0};
  SearchOptions o;
  o.k = 3;
  const auto r = g->search("new", 1, q, 3, o);
  // Only new vectors now: A (1,0,0) 2/√5, C (1,1,0) 3/√10, B (0,1,0) 1/√5.
  EXPECT_EQ(r.ids, (std::vector<int64_t>{id_of(*g, "C"), id_of(*g, "A"), id_of(*g, "B")}));
  const float qo[2] = {0, 1};
  EXPECT_NE(error_of([&] { g->search("old", 1, qo, 2, o); }).find("is retired"), std::string::npos);
  EXPECT_NE(error_of([&] { g->retire("old"); }).find("already retired"), std::string::npos);
}

// IndexCache.*: SQLite only (no pg. variant): the cache files live in the gallery directory;
// a PostgreSQL gallery has no cache_dir and keeps its indexes in memory.
TEST(IndexCache, WrittenReusedToppedUpAndRebuiltWhenStaleOrForeign) {
  const auto dir = fixtures::temp_dir("cache");
  std::vector<std::string> notices;
  OpenOptions oo;
  oo.notice = [&](const std::string& s) { notices.push_back(s); };
  auto g = Gallery::create(dir, {"old", 4, "", ""}, oo);
  std::vector<std::string> keys;
  std::vector<float> x;
  for (int i = 0; i < 30; ++i) {
    keys.push_back("item" + std::to_string(i));
    auto v = fixtures::key_vector(keys.back(), 4, 0);
    x.insert(x.end(), v.begin(), v.end());
  }
  g->import_vectors("old", fixtures::records(std::vector<std::string>(keys.begin(), keys.begin() + 20)), 4, x.data(), false);
  SearchOptions o;
  o.k = 5;
  const auto first = g->search("old", 1, x.data() + 4 * 25, 4, o);
  const std::string cache = VectorIndex::cache_path(dir, g->precedence("old")[0], 4, "flat");
  ASSERT_TRUE(fs::exists(cache));
  // Another "process" adds items: this object sees them at its next search (data_version).
  {
    auto other = Gallery::open(dir);
    other->import_vectors("old", fixtures::records(std::vector<std::string>(keys.begin() + 20, keys.end())), 4,
                          x.data() + 20 * 4, false);
  }
  const auto after = g->search("old", 1, x.data() + 4 * 25, 4, o);
  EXPECT_EQ(g->items({after.ids[0]})[0].record.key, "item25");
  EXPECT_NEAR(after.scores[0], 1.0, 1e-6);
  EXPECT_TRUE(notices.empty());
  // A cache file from another gallery, then a truncated one: rebuilt, with a notice.
  const auto other_dir = fixtures::temp_dir("cache_other");
  {
    auto h = Gallery::create(other_dir, {"old", 4, "", ""});
    h->import_vectors("old", fixtures::records({"elsewhere"}), 4, x.data(), false);
    h->search("old", 1, x.data(), 4, o);
  }
  fs::copy_file(VectorIndex::cache_path(other_dir, g->precedence("old")[0], 4, "flat"), cache,
                fs::copy_options::overwrite_existing);
  {
    auto g2 = Gallery::open(dir, oo);
    const auto r = g2->search("old", 1, x.data() + 4 * 25, 4, o);
    EXPECT_EQ(g2->items({r.ids[0]})[0].record.key, "item25");
  }
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_NE(notices[0].find("stale or corrupt (built for gallery"), std::string::npos) << notices[0];
  fs::resize_file(cache, 100);
  {
    auto g3 = Gallery::open(dir, oo);
    const auto r = g3->search("old", 1, x.data() + 4 * 25, 4, o);
    EXPECT_EQ(g3->items({r.ids[0]})[0].record.key, "item25");
  }
  ASSERT_EQ(notices.size(), 2u);
  EXPECT_NE(notices[1].find("stale or corrupt"), std::string::npos) << notices[1];
  (void)first;
}

// A rolled-out model with nothing backfilled has an empty index; written at exit (as
// `dualtune serve` does), it must load again in the next process (it once crashed there).
TEST(IndexCache, AnEmptyCacheOfANewModelIsWrittenAndLoadedAgain) {
  const auto dir = fixtures::temp_dir("cache_empty");
  std::vector<float> x;
  std::vector<std::string> keys;
  for (int i = 0; i < 6; ++i) {
    keys.push_back("item" + std::to_string(i));
    auto v = fixtures::key_vector(keys.back(), 4, 0);
    x.insert(x.end(), v.begin(), v.end());
  }
  SearchOptions o;
  o.k = 3;
  {
    auto g = Gallery::create(dir, {"old", 4, "", ""});
    g->import_vectors("old", fixtures::records(keys), 4, x.data(), false);
    g->rollout({"new", 4, "", ""});
    g->search("new", 1, x.data(), 4, o);
    g->flush_caches();
  }
  ASSERT_TRUE(fs::exists(VectorIndex::cache_path(dir, Gallery::open(dir)->precedence("new")[0], 4, "flat")));
  std::vector<std::string> notices;
  OpenOptions oo;
  oo.notice = [&](const std::string& s) { notices.push_back(s); };
  auto g = Gallery::open(dir, oo);
  const auto r = g->search("new", 1, x.data() + 8, 4, o);
  EXPECT_EQ(g->items({r.ids[0]})[0].record.key, "item2");
  EXPECT_NEAR(r.scores[0], 1.0, 1e-6);
  EXPECT_TRUE(notices.empty()) << notices[0];
}

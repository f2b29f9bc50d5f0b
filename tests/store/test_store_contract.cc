// The store contract (store.h), run against both implementations: SQLite in a temporary
// directory and PostgreSQL in a fresh database of the test cluster. Every expected value
// is written out by hand from the calls made (bit-exact vectors, ids in insertion order,
// counts of the rows written).
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <set>

#include "dualtune/gallery/store.h"
#include "dualtune/util/error.h"
#include "gallery_fixtures.h"
#include "store_test_env.h"

using namespace dualtune::gallery;
using dualtune::Error;
using testenv::Kind;

namespace {

using dualtune::gallery::fixtures::error_of;

class StoreContract : public testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    const auto* info = testing::UnitTest::GetInstance()->current_test_info();
    where_ = std::make_unique<testenv::Where>(GetParam(), std::string("contract_") + info->name());
    ASSERT_TRUE(where_->ok());
  }
  const std::string& where() const { return where_->str(); }
  std::unique_ptr<testenv::Where> where_;
};

}  // namespace

TEST_P(StoreContract, CreateThenOpenKeepsModelsItemsAndVectors) {
  std::string uuid;
  {
    auto s = Store::create(where());
    const ModelInfo m = s->add_model("old", 3, "runs/old", "config:abc", Role::kDeployed);
    const float v[6] = {1, 2, 3, -4, 5.5f, 6};
    const auto ids = s->add_items(fixtures::records({"a.png", "b.png"}, {"cat", ""}), {{m.version_id, 3, v}});
    EXPECT_EQ(ids.size(), 2u);
    EXPECT_LT(ids[0], ids[1]);  // ids follow the call's order
    uuid = s->uuid();
    EXPECT_EQ(uuid.size(), 32u);
  }
  auto s = Store::open(where());
  EXPECT_EQ(s->uuid(), uuid);
  const auto models = s->models();
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0].name, "old");
  EXPECT_EQ(models[0].dim, 3);
  EXPECT_EQ(models[0].path, "runs/old");
  EXPECT_EQ(models[0].config_hash, "config:abc");
  EXPECT_EQ(models[0].role, Role::kDeployed);
  EXPECT_EQ(s->item_count(), 2);
  const auto rows = s->items();
  EXPECT_EQ(rows[0].record.key, "a.png");
  EXPECT_EQ(rows[0].record.label, "cat");
  EXPECT_EQ(rows[0].record.cam, -1);
  EXPECT_EQ(rows[1].record.label, "");
  std::vector<uint8_t> has;
  const auto back = s->vectors_of(models[0].version_id, {rows[1].id, rows[0].id}, has);
  EXPECT_EQ(back, (std::vector<float>{-4, 5.5f, 6, 1, 2, 3}));  // bit-exact, as stored
  EXPECT_EQ(has, (std::vector<uint8_t>{1, 1}));
  EXPECT_EQ(s->integrity_check(), "ok");
  EXPECT_NE(error_of([&] { Store::create(where()); }).find("already holds a gallery"), std::string::npos);
}

TEST_P(StoreContract, OpeningWhereThereIsNoGallerySaysHowToMakeOne) {
  const std::string w = GetParam() == Kind::kSqlite ? fixtures::temp_dir("contract_empty") : where();
  const auto e = error_of([&] { Store::open(w); });
  EXPECT_NE(e.find("no gallery at"), std::string::npos) << e;
  EXPECT_NE(e.find("dualtune gallery create"), std::string::npos) << e;
}

TEST_P(StoreContract, WritesAreAllOrNothingAndVectorsImmutable) {
  auto s = Store::create(where());
  const ModelInfo m = s->add_model("old", 2, "", "", Role::kDeployed);
  const float v[6] = {1, 0, 0, 1, 1, 1};
  s->add_items(fixtures::records({"a"}), {{m.version_id, 2, v}});
  // "b" is new but "a" is not: the whole call fails, "b" is not added.
  EXPECT_NE(error_of([&] { s->add_items(fixtures::records({"b", "a"}), {{m.version_id, 2, v}}); }).find("'a'"),
            std::string::npos);
  EXPECT_EQ(s->item_count(), 1);
  EXPECT_EQ(s->count_vectors(m.version_id), 1);
  EXPECT_EQ(s->find_keys({"b"}), (std::vector<int64_t>{-1}));
  const int64_t a = s->find_keys({"a"})[0];
  EXPECT_NE(error_of([&] { s->add_vectors({a}, {m.version_id, 2, v + 2}); }).find("immutable"), std::string::npos);
  EXPECT_EQ(s->add_vectors({a}, {m.version_id, 2, v + 2}, {}, true), 0);  // keep_existing: the first write wins
  std::vector<uint8_t> has;
  EXPECT_EQ(s->vectors_of(m.version_id, {a}, has), (std::vector<float>{1, 0}));
  EXPECT_NE(error_of([&] { s->add_vectors({a}, {m.version_id, 3, v}); }).find("dimension 2, found vectors of dimension 3"),
            std::string::npos);
  EXPECT_NE(error_of([&] { s->add_model("old", 2, "", "", Role::kRollingOut); }).find("'old' already exists"),
            std::string::npos);
  EXPECT_NE(error_of([&] { s->add_items(fixtures::records({""}), {{m.version_id, 2, v}}); }).find("non-empty item key"),
            std::string::npos);
  EXPECT_NE(error_of([&] { s->add_items(fixtures::records({"x"}), {}); }).find("at least one embedding"),
            std::string::npos);
}

TEST_P(StoreContract, KeepExistingStoresEachItemOnceAndRecordsFailuresInTheSameCall) {
  auto s = Store::create(where());
  const ModelInfo old = s->add_model("old", 2, "", "", Role::kDeployed);
  const float v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  const auto ids = s->add_items(fixtures::records({"a", "b", "c", "d"}), {{old.version_id, 2, v}});
  const ModelInfo nw = s->add_model("new", 2, "", "", Role::kRollingOut);
  EXPECT_EQ(nw.role, Role::kRollingOut);
  const float w[6] = {10, 11, 20, 21, 30, 31};
  EXPECT_EQ(s->add_vectors({ids[0], ids[1]}, {nw.version_id, 2, w}), 2);
  // a and b already have one: only c is stored, with its own row of w; d failed.
  EXPECT_EQ(s->add_vectors({ids[0], ids[1], ids[2]}, {nw.version_id, 2, w}, {{ids[3], "corrupt image"}}, true), 1);
  EXPECT_EQ(s->count_vectors(nw.version_id), 3);
  EXPECT_EQ(s->items_with(nw.version_id), (std::vector<int64_t>{ids[0], ids[1], ids[2]}));
  EXPECT_EQ(s->items_without(nw.version_id), (std::vector<int64_t>{ids[3]}));
  std::vector<uint8_t> has;
  EXPECT_EQ(s->vectors_of(nw.version_id, {ids[2], ids[3], ids[0]}, has), (std::vector<float>{30, 31, 0, 0, 10, 11}));
  EXPECT_EQ(has, (std::vector<uint8_t>{1, 0, 1}));
  EXPECT_EQ(s->failures(nw.version_id), (std::vector<std::pair<int64_t, std::string>>{{ids[3], "corrupt image"}}));
  s->clear_failures(nw.version_id);
  EXPECT_TRUE(s->failures(nw.version_id).empty());
  const auto iv = s->item_versions({ids[3], ids[0]});
  EXPECT_EQ(iv[0], (std::vector<int64_t>{old.version_id}));
  EXPECT_EQ(iv[1], (std::vector<int64_t>{old.version_id, nw.version_id}));
}

TEST_P(StoreContract, VectorsComeBackInWriteOrderAfterAGivenSeq) {
  auto s = Store::create(where());
  const ModelInfo m = s->add_model("old", 2, "", "", Role::kDeployed);
  const float v[6] = {1, 1, 2, 2, 3, 3};
  const auto first = s->add_items(fixtures::records({"z", "y"}), {{m.version_id, 2, v}});
  const int64_t s1 = s->max_seq(m.version_id);
  EXPECT_GT(s1, 0);
  const auto second = s->add_items(fixtures::records({"x"}), {{m.version_id, 2, v + 4}});
  std::vector<int64_t> items, seqs;
  std::vector<float> xs;
  s->for_each_vector(m.version_id, 0, [&](int64_t seq, int64_t id, const float* x) {
    seqs.push_back(seq);
    items.push_back(id);
    xs.insert(xs.end(), x, x + 2);
  });
  EXPECT_EQ(items, (std::vector<int64_t>{first[0], first[1], second[0]}));
  EXPECT_EQ(xs, (std::vector<float>{1, 1, 2, 2, 3, 3}));
  EXPECT_TRUE(std::is_sorted(seqs.begin(), seqs.end()));
  EXPECT_EQ(seqs.back(), s->max_seq(m.version_id));
  items.clear();
  s->for_each_vector(m.version_id, s1, [&](int64_t, int64_t id, const float*) { items.push_back(id); });
  EXPECT_EQ(items, (std::vector<int64_t>{second[0]}));  // a cache at s1 tops up with x only
  EXPECT_EQ(s->items_page(1, 5).size(), 2u);
  EXPECT_EQ(s->items_page(1, 1)[0].record.key, "y");
  EXPECT_EQ(s->items({second[0], first[0]})[0].record.key, "x");
  EXPECT_NE(error_of([&] { s->items({second[0] + 100}); }).find("no item with id"), std::string::npos);
}

TEST_P(StoreContract, PlansFitsSourcesAndRetirement) {
  auto s = Store::create(where());
  const ModelInfo old = s->add_model("old", 2, "", "", Role::kDeployed);
  const int64_t src = s->add_source(R"({"format":"files"})");
  EXPECT_EQ(s->add_source(R"({"format":"files"})"), src);  // inserted once
  EXPECT_EQ(s->source_spec(src), R"({"format":"files"})");
  std::vector<ItemRecord> recs = fixtures::records({"p", "q", "r"});
  for (auto& r : recs) r.source_id = src;
  recs[1].cam = 4;
  const float v[6] = {1, 0, 0, 1, 1, 1};
  const auto ids = s->add_items(recs, {{old.version_id, 2, v}});
  EXPECT_EQ(s->items({ids[1]})[0].record.cam, 4);
  EXPECT_EQ(s->items({ids[1]})[0].record.source_id, src);
  const ModelInfo nw = s->add_model("new", 2, "", "", Role::kRollingOut);

  Plan p{nw.version_id, "random", 7, 2, {ids[2], ids[0], ids[1]}};
  s->save_plan(p);
  Plan back;
  ASSERT_TRUE(s->load_plan(nw.version_id, back));
  EXPECT_EQ(back.order, "random");
  EXPECT_EQ(back.seed, 7u);
  EXPECT_EQ(back.batch_size, 2);
  EXPECT_EQ(back.items, p.items);
  EXPECT_FALSE(s->load_plan(old.version_id, back));
  const float w[2] = {5, 5};
  s->add_vectors({ids[2]}, {nw.version_id, 2, w}, {{ids[0], "missing"}});
  EXPECT_EQ(s->plan_counts(nw.version_id), std::make_tuple(int64_t(3), int64_t(1), int64_t(1)));
  p.items = {ids[1]};  // a new plan replaces the old one
  s->save_plan(p);
  EXPECT_EQ(s->plan_counts(nw.version_id), std::make_tuple(int64_t(1), int64_t(0), int64_t(0)));

  EXPECT_EQ(s->load_fit("calibration", nw.id, old.version_id), "");
  s->save_fit("calibration", nw.id, old.version_id, R"({"a":1})");
  s->save_fit("calibration", nw.id, old.version_id, R"({"a":2})");  // replaced
  EXPECT_EQ(s->load_fit("calibration", nw.id, old.version_id), R"({"a":2})");

  const VersionInfo d = s->add_derived_version("new@h", nw.id, 2, old.version_id, "h.pt");
  EXPECT_EQ(d.derived_from, old.version_id);
  EXPECT_EQ(d.transform, "h.pt");
  EXPECT_EQ(s->versions().size(), 3u);
  s->add_vectors({ids[0]}, {d.id, 2, w});
  // Retire old, promote new: old's and the derived version's vectors go (3 + 1), their
  // generations move on, new's plan of the retired... stays (new is not dropped).
  EXPECT_EQ(s->retire_model(old.id, nw.id, {old.version_id, d.id}), 4);
  EXPECT_EQ(s->model("old").role, Role::kRetired);
  EXPECT_EQ(s->model("new").role, Role::kDeployed);
  EXPECT_EQ(s->count_vectors(old.version_id), 0);
  EXPECT_EQ(s->version(d.id).generation, 1);
  EXPECT_EQ(s->version(nw.version_id).generation, 0);
  EXPECT_EQ(s->plan_counts(nw.version_id), std::make_tuple(int64_t(1), int64_t(0), int64_t(0)));
  const auto e = error_of([&] { s->model("gone"); });
  EXPECT_NE(e.find("no model named 'gone'; the gallery has old (retired), new (deployed)"), std::string::npos) << e;
  EXPECT_EQ(s->integrity_check(), "ok");
}

TEST_P(StoreContract, AnotherConnectionsCommitChangesTheDataVersion) {
  auto a = Store::create(where());
  const ModelInfo m = a->add_model("old", 2, "", "", Role::kDeployed);
  auto b = Store::open(where(), true);
  const int64_t before = b->data_version();
  EXPECT_EQ(b->data_version(), before);  // nothing committed in between
  const float v[2] = {1, 2};
  a->add_items(fixtures::records({"k"}), {{m.version_id, 2, v}});
  EXPECT_NE(b->data_version(), before);
  EXPECT_EQ(b->item_count(), 1);
  // Read-only: no write goes through.
  EXPECT_THROW(b->add_items(fixtures::records({"k2"}), {{m.version_id, 2, v}}), Error);
  EXPECT_EQ(a->item_count(), 1);
}

TEST_P(StoreContract, AnUncommittedTransactionLeavesNothing) {
  auto s = Store::create(where());
  const ModelInfo m = s->add_model("old", 2, "", "", Role::kDeployed);
  {
    auto t = s->transaction(true);
    s->save_fit("order", m.id, m.version_id, "{}");
    s->set_role(m.id, Role::kRetired);
  }  // destroyed without commit: rolled back
  EXPECT_EQ(s->load_fit("order", m.id, m.version_id), "");
  EXPECT_EQ(s->model("old").role, Role::kDeployed);
  {
    auto t = s->transaction(true);
    s->save_fit("order", m.id, m.version_id, "{}");
    t->commit();
  }
  EXPECT_EQ(s->load_fit("order", m.id, m.version_id), "{}");
}

TEST_P(StoreContract, OneBackfillLockAtATime) {
  auto a = Store::create(where());
  auto b = Store::open(where());
  {
    auto held = a->backfill_lock();
    const auto e = error_of([&] { b->backfill_lock(); });
    EXPECT_NE(e.find("another backfill is running on this gallery"), std::string::npos) << e;
  }
  EXPECT_NO_THROW(b->backfill_lock());  // released with the holder
}

// --- lifecycle history ------------------------------------------------------------------

namespace {

HistoryEvent event(const std::string& kind, const std::string& model, const std::string& deployed,
                   const std::string& note = "") {
  HistoryEvent e;
  e.event = kind;
  e.model = model;
  e.deployed = deployed;
  e.note = note;
  return e;
}

/// "2026-01-31T12:00:00Z": the 20-character form of detail::now_utc.
bool iso_utc(const std::string& t) {
  if (t.size() != 20 || t[4] != '-' || t[7] != '-' || t[10] != 'T' || t[13] != ':' || t[16] != ':' || t[19] != 'Z')
    return false;
  for (int i : {0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18})
    if (!std::isdigit(static_cast<unsigned char>(t[i]))) return false;
  return true;
}

}  // namespace

TEST_P(StoreContract, HistoryKeepsEveryEventInOrderWithItsGate) {
  auto s = Store::create(where());
  EXPECT_TRUE(s->history().empty());
  s->add_model("old", 2, "", "", Role::kDeployed);
  HistoryEvent r = event("rollout", "new", "old");
  r.id = 99;                        // ignored: the store numbers events
  r.time = "1999-01-01T00:00:00Z";  // ignored: the store stamps now
  r.has_gate = true;
  r.gate.decision = "passed";
  r.gate.probe = "features probe/old probe/new";
  r.gate.old_old_map = 0.5;
  r.gate.new_old_map = 0.625;  // binary fractions: exact through JSON text
  r.gate.new_new_map = 0.75;
  r.gate.old_old_top1 = 0.25;
  r.gate.queries = 14;  // new_old_top1, new_new_top1 stay unmeasured (NaN)
  const ModelInfo nw = s->add_model("new", 2, "", "", Role::kRollingOut, &r);
  s->set_role_recorded(nw.id, Role::kRolledBack, event("rollback", "new", "old", "kept 0 of 0 embeddings"));
  EXPECT_EQ(s->model("new").role, Role::kRolledBack);  // the role round-trips through the CHECK
  s->set_role_recorded(nw.id, Role::kRollingOut, event("rollout", "new", "old", "resumed"));
  s->add_history(event("retire", "old", "new"));

  // Reopened: what is stored, not what this connection remembers.
  s = Store::open(where(), true);
  const auto h = s->history();
  ASSERT_EQ(h.size(), 4u);
  EXPECT_EQ(h[0].event, "rollout");
  EXPECT_EQ(h[1].event, "rollback");
  EXPECT_EQ(h[2].event, "rollout");
  EXPECT_EQ(h[3].event, "retire");
  for (size_t i = 0; i < h.size(); ++i) {
    if (i > 0) EXPECT_GT(h[i].id, h[i - 1].id) << i;  // ORDER BY id: oldest first
    EXPECT_TRUE(iso_utc(h[i].time)) << h[i].time;
    EXPECT_NE(h[i].time, "1999-01-01T00:00:00Z");
  }
  EXPECT_NE(h[0].id, 99);
  EXPECT_EQ(h[0].model, "new");
  EXPECT_EQ(h[0].deployed, "old");
  EXPECT_EQ(h[0].note, "");
  ASSERT_TRUE(h[0].has_gate);
  EXPECT_EQ(h[0].gate.decision, "passed");
  EXPECT_EQ(h[0].gate.probe, "features probe/old probe/new");
  EXPECT_EQ(h[0].gate.old_old_map, 0.5);
  EXPECT_EQ(h[0].gate.new_old_map, 0.625);
  EXPECT_EQ(h[0].gate.new_new_map, 0.75);
  EXPECT_EQ(h[0].gate.old_old_top1, 0.25);
  EXPECT_TRUE(std::isnan(h[0].gate.new_old_top1));
  EXPECT_TRUE(std::isnan(h[0].gate.new_new_top1));
  EXPECT_EQ(h[0].gate.queries, 14);
  EXPECT_FALSE(h[1].has_gate);  // only a rollout carries its gate
  EXPECT_EQ(h[1].note, "kept 0 of 0 embeddings");
  EXPECT_EQ(h[2].note, "resumed");
  EXPECT_EQ(h[3].model, "old");
  EXPECT_EQ(h[3].deployed, "new");
}

TEST_P(StoreContract, ARoleChangeAndItsEventCommitTogetherOrNotAtAll) {
  auto s = Store::create(where());
  s->add_model("old", 2, "", "", Role::kDeployed);
  const ModelInfo nw = s->add_model("new", 2, "", "", Role::kRollingOut);
  // The role is updated first, then the event is refused: the update is rolled back too.
  const auto e = error_of([&] { s->set_role_recorded(nw.id, Role::kRolledBack, event("deploy", "new", "old")); });
  EXPECT_NE(e.find("expected a history event rollout, rollback or retire, found 'deploy'"), std::string::npos) << e;
  EXPECT_EQ(s->model("new").role, Role::kRollingOut);
  EXPECT_TRUE(s->history().empty());
  // add_history joins the caller's transaction: not committed, not there.
  {
    auto t = s->transaction(true);
    s->add_history(event("rollback", "new", "old"));
    s->set_role(nw.id, Role::kRolledBack);
  }
  EXPECT_TRUE(s->history().empty());
  EXPECT_EQ(s->model("new").role, Role::kRollingOut);
  {
    auto t = s->transaction(true);
    s->set_role(nw.id, Role::kRolledBack);
    s->add_history(event("rollback", "new", "old"));
    t->commit();
  }
  ASSERT_EQ(s->history().size(), 1u);
  EXPECT_EQ(Store::open(where(), true)->model("new").role, Role::kRolledBack);
}

TEST_P(StoreContract, AddModelAndRetireModelRecordTheirEventInTheirTransaction) {
  auto s = Store::create(where());
  const ModelInfo old = s->add_model("old", 2, "", "", Role::kDeployed);
  const float v[4] = {1, 2, 3, 4};
  s->add_items(fixtures::records({"a", "b"}), {{old.version_id, 2, v}});
  // A refused record refuses the model with it: no model, no version, no event.
  const HistoryEvent bad = event("deploy", "new", "old");
  EXPECT_NE(error_of([&] { s->add_model("new", 2, "", "", Role::kRollingOut, &bad); }).find("'deploy'"),
            std::string::npos);
  EXPECT_EQ(s->models().size(), 1u);
  EXPECT_EQ(s->versions().size(), 1u);
  EXPECT_TRUE(s->history().empty());
  const HistoryEvent r = event("rollout", "new", "old");
  const ModelInfo nw = s->add_model("new", 2, "", "", Role::kRollingOut, &r);
  // Same for a retirement: old stays deployed with its 2 vectors, new stays rolling out.
  EXPECT_NE(error_of([&] { s->retire_model(old.id, nw.id, {old.version_id}, &bad); }).find("'deploy'"),
            std::string::npos);
  EXPECT_EQ(s->model("old").role, Role::kDeployed);
  EXPECT_EQ(s->model("new").role, Role::kRollingOut);
  EXPECT_EQ(s->count_vectors(old.version_id), 2);
  EXPECT_EQ(s->version(old.version_id).generation, 0);
  EXPECT_EQ(s->history().size(), 1u);
  const HistoryEvent ret = event("retire", "old", "new", "dropped 2 embeddings");
  EXPECT_EQ(s->retire_model(old.id, nw.id, {old.version_id}, &ret), 2);
  const auto h = Store::open(where(), true)->history();
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0].event, "rollout");
  EXPECT_EQ(h[0].model, "new");
  EXPECT_EQ(h[1].event, "retire");
  EXPECT_EQ(h[1].model, "old");
  EXPECT_EQ(h[1].deployed, "new");
  EXPECT_EQ(h[1].note, "dropped 2 embeddings");
  EXPECT_EQ(s->model("old").role, Role::kRetired);
  EXPECT_EQ(s->count_vectors(old.version_id), 0);
}

INSTANTIATE_TEST_SUITE_P(BothStores, StoreContract, testing::Values(Kind::kSqlite, Kind::kPostgres), testenv::kind_name);

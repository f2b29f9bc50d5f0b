// The gated cutover: the rollout gate's numbers against mAP and top-1 computed by hand on
// six 2-D probe items, its refusal (both numbers named) and --force; rollback keeping the
// backfilled embeddings and a second rollout resuming; rollback after the cutover; the
// history in the store, in `gallery status`, and in a gallery made before the history.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "dualtune/app/gallery_status.h"
#include "dualtune/app/rollout_gate.h"
#include "dualtune/eval/evaluate.h"
#include "dualtune/gallery/gallery.h"
#include "dualtune/gallery/sqlite.h"
#include "dualtune/report/report.h"
#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"
#include "feature_set_2d.h"
#include "gallery_fixtures.h"
#include "store_test_env.h"

using namespace dualtune;
using namespace dualtune::gallery;
namespace fs = std::filesystem;

namespace {

using dualtune::gallery::fixtures::error_of;
using dualtune::gallery::testenv::gallery_at;

/// Unit vectors at the given angles (degrees): cosine ranks by angular distance.
features::FeatureSet at_angles(const std::vector<double>& degrees) {
  std::vector<float> f;
  for (double a : degrees) f.push_back(float(std::cos(a * M_PI / 180))), f.push_back(float(std::sin(a * M_PI / 180)));
  auto s = dualtune_test::feature_set_2d(f, {0, 0, 0, 1, 1, 1});
  for (int i = 0; i < 6; ++i) s.paths.push_back("p" + std::to_string(i));
  return s;
}

// The probe: items 0-2 of class A, 3-5 of class B.
//   old:  0°, 20°, 50° (A); 45°, 95°, 120° (B)
// old/old, leave-one-out (positives' ranks among the other five, by angular distance):
//   q0: 1(20) 3(45) 2(50)..  -> ranks 1,3: AP 5/6     q1: 0(20) 3(25) 2(30) -> 5/6
//   q2: 3(5) 1(30) 4(45) 0(50) -> ranks 2,4: AP 1/2   q3: 2 1 0 4(50) 5(75) -> ranks 4,5: (1/4+2/5)/2 = 0.325
//   q4: 5(25) 2(45) 3(50) -> 5/6                      q5: 4(25) 2(70) 3(75) -> 5/6
//   mAP = (10/3 + 0.825)/6 = 499/720; top-1 hits q0 q1 q4 q5 = 4/6.
// good new queries: the same but item 2 at 5° and item 3 at 100° (against the old gallery):
//   q2: 0(5) 1(15) -> AP 1; q3: 4(5) 5(20) -> AP 1; the others as old/old.
//   new→old mAP = (10/3 + 2)/6 = 8/9; top-1 6/6.
// bad new queries: every old vector turned by 180°, which reverses each ranking:
//   q0: 5 4 2 3 1 -> ranks 3,5: (1/3+2/5)/2 = 11/30; q1 the same; q2: 5 0 4 1 3 -> 1/2;
//   q3: 5 4 .. -> 1; q4: 0 1 3 2 5 -> 11/30; q5: 0 1 3 2 4 -> 11/30.
//   new→old mAP = (44/30 + 1.5)/6 = 89/180; top-1 only q3 = 1/6.
const std::vector<double> kOld{0, 20, 50, 45, 95, 120};
const std::vector<double> kGood{0, 20, 5, 100, 95, 120};
const std::vector<double> kBad{180, 200, 230, 225, 275, 300};
const app::GateModels kModels{"old", "new", 2, 2};

}  // namespace

TEST(RolloutGate, NumbersEqualMapAndTop1ComputedByHand) {
  const auto good = app::gate_from_feature_sets(at_angles(kOld), at_angles(kGood), kModels, 1);
  EXPECT_NEAR(good.old_old_map, 499.0 / 720, 1e-9);
  EXPECT_NEAR(good.new_old_map, 8.0 / 9, 1e-9);
  EXPECT_NEAR(good.old_old_top1, 4.0 / 6, 1e-9);
  EXPECT_NEAR(good.new_old_top1, 1.0, 1e-9);
  EXPECT_EQ(good.queries, 6);
  const auto bad = app::gate_from_feature_sets(at_angles(kOld), at_angles(kBad), kModels, 1);
  EXPECT_NEAR(bad.old_old_map, 499.0 / 720, 1e-9);
  EXPECT_NEAR(bad.new_old_map, 89.0 / 180, 1e-9);
  EXPECT_NEAR(bad.new_old_top1, 1.0 / 6, 1e-9);
}

TEST(RolloutGate, RefusesNamingBothNumbersAndForceOverridesIt) {
  auto good = app::gate_from_feature_sets(at_angles(kOld), at_angles(kGood), kModels, 1);
  app::judge_gate(good, false, kModels);
  EXPECT_EQ(good.decision, "passed");
  auto bad = app::gate_from_feature_sets(at_angles(kOld), at_angles(kBad), kModels, 1);
  // 89/180 = 49.44 %, 499/720 = 69.31 %; top-1 1/6 = 16.67 %, 4/6 = 66.67 %.
  const std::string msg = error_of([&] { app::judge_gate(bad, false, kModels); });
  EXPECT_NE(msg.find("mAP 49.44%, not above old/old 69.31%"), std::string::npos) << msg;
  EXPECT_NE(msg.find("top-1 16.67% vs 66.67%"), std::string::npos) << msg;
  app::judge_gate(bad, true, kModels);
  EXPECT_EQ(bad.decision, "forced");
  RolloutGate none;
  EXPECT_NE(error_of([&] { app::judge_gate(none, false, kModels); }).find("--probe-features"), std::string::npos);
  app::judge_gate(none, true, kModels);
  EXPECT_EQ(none.decision, "forced");
  EXPECT_FALSE(none.measured());
}

TEST(RolloutGate, ReadsFeatureDirectoriesAndEvalReportsWithTheSameNumbers) {
  const auto dir = fixtures::temp_dir("gate_report");
  at_angles(kOld).save(dir + "/old");
  at_angles(kBad).save(dir + "/new");
  const auto from_dirs = app::gate_from_features(dir + "/old", dir + "/new", kModels, 1);
  EXPECT_NEAR(from_dirs.new_old_map, 89.0 / 180, 1e-9);
  EXPECT_EQ(from_dirs.probe, "features " + dir + "/old " + dir + "/new");
  // The report `dualtune eval` writes for the same features.
  const auto rep = eval::evaluate_compatibility(
      {eval::loo_model("old", at_angles(kOld)), eval::loo_model("new", at_angles(kBad))}, "old", {});
  write_text_atomic(dir + "/report.json", report::report_json(rep));
  const auto from_report = app::gate_from_report(dir, kModels);
  EXPECT_NEAR(from_report.old_old_map, 499.0 / 720, 1e-9);
  EXPECT_NEAR(from_report.new_old_map, 89.0 / 180, 1e-9);
  EXPECT_NEAR(from_report.new_old_top1, 1.0 / 6, 1e-9);
  EXPECT_EQ(from_report.queries, 6);
  // The report's model sizes must be the gallery's.
  EXPECT_NE(error_of([&] { app::gate_from_report(dir, {"old", "new", 3, 2}); }).find("embeds d = 2"), std::string::npos);
  // A report of other models' names with one upgrade is used, and says which.
  EXPECT_NE(app::gate_from_report(dir, {"v1", "v2", 2, 2}).probe.find("(new→old)"), std::string::npos);
  EXPECT_NE(error_of([&] { app::gate_from_report(dir + "/old", kModels); }).find("cannot read the eval report"),
            std::string::npos);
}

namespace {

/// 30 items embedded by "old" (d 4); "new" (d 6) rolled out with a measured gate.
std::unique_ptr<Gallery> rolled_out(const std::string& dir, const RolloutGate& gate) {
  auto g = Gallery::create(gallery_at(dir), {"old", 4, "", ""});
  std::vector<ItemRecord> items;
  std::vector<float> v;
  for (int i = 0; i < 30; ++i) {
    items.push_back({"k" + std::to_string(i), i % 2 ? "a" : "b", -1, 0});
    const auto x = fixtures::key_vector(items.back().key, 4, 1);
    v.insert(v.end(), x.begin(), x.end());
  }
  g->import_vectors("old", items, 4, v.data(), false);
  g->rollout({"new", 6, "", "fp-new"}, gate);
  return g;
}

RolloutGate passed_gate() {
  RolloutGate gate = app::gate_from_feature_sets(at_angles(kOld), at_angles(kGood), kModels, 1);
  app::judge_gate(gate, false, kModels);
  return gate;
}

}  // namespace

TEST(GalleryRollback, KeepsTheEmbeddingsAndASecondRolloutResumesToTheUninterruptedResult) {
  const auto dir = fixtures::temp_dir("rollback_resume");
  auto g = rolled_out(dir, passed_gate());
  fixtures::KeyEmbedder emb(6, 2, "fp-new");
  BackfillOptions step;
  step.batch_size = 5;
  step.max_items = 10;
  EXPECT_EQ(g->backfill(step, emb).embedded, 10);
  const auto before = fixtures::vectors_by_key(gallery_at(dir), "new");
  ASSERT_EQ(before.size(), 10u);

  const ModelInfo back = g->rollback();
  EXPECT_EQ(back.role, Role::kRolledBack);
  EXPECT_EQ(g->target_model().name, "old");  // queries without a model use the deployed one
  EXPECT_EQ(fixtures::vectors_by_key(gallery_at(dir), "new"), before);  // kept, bit for bit
  const float q[6] = {1, 0, 0, 0, 0, 0};
  EXPECT_NE(error_of([&] { g->search("new", 1, q, 6); }).find("was rolled back"), std::string::npos);
  EXPECT_NE(error_of([&] { g->backfill({}, emb); }).find("no model is rolling out"), std::string::npos);
  BackfillOptions named;
  named.model = "new";
  EXPECT_NE(error_of([&] { g->backfill(named, emb); }).find("'new' is rolled_back"), std::string::npos);
  EXPECT_NE(error_of([&] { g->rollback(); }).find("'new' was already rolled back"), std::string::npos);
  // Only the same model resumes.
  EXPECT_NE(error_of([&] { g->rollout({"new", 6, "", "fp-retrained"}); }).find("fingerprint fp-new"), std::string::npos);

  g->rollout({"new", 6, "", "fp-new"}, passed_gate());
  EXPECT_EQ(g->history().back().note, "resumed: 10 of 30 items already embedded");
  const auto rest = g->backfill({}, emb);
  EXPECT_EQ(rest.embedded, 20);  // the 10 kept are not embedded again
  EXPECT_TRUE(rest.finished);
  // The uninterrupted result: every item's vector is key_vector(key, 6, 2).
  const auto all = fixtures::vectors_by_key(gallery_at(dir), "new");
  ASSERT_EQ(all.size(), 30u);
  for (const auto& [key, v] : all) EXPECT_EQ(v, fixtures::key_vector(key, 6, 2)) << key;
}

TEST(GalleryRollback, ARunningBackfillStopsAtItsNextBatch) {
  const auto dir = fixtures::temp_dir("rollback_running");
  auto g = rolled_out(dir, passed_gate());
  fixtures::KeyEmbedder emb(6, 2, "fp-new");
  BackfillOptions opt;
  opt.batch_size = 5;
  int calls = 0;
  // The rollback lands after the first committed batch, as from another thread or process.
  const auto rep = g->backfill(opt, emb, [&](const BackfillProgress& p) {
    if (++calls == 2 && p.done == 5) g->rollback();
  });
  EXPECT_TRUE(rep.rolled_back);
  EXPECT_FALSE(rep.finished);
  EXPECT_EQ(rep.embedded, 5);
  EXPECT_EQ(rep.remaining, 25);
  EXPECT_EQ(fixtures::vectors_by_key(gallery_at(dir), "new").size(), 5u);
}

TEST(GalleryRollback, AfterTheCutoverIsAnErrorSayingWhy) {
  const auto dir = fixtures::temp_dir("rollback_after_retire");
  auto g = rolled_out(dir, passed_gate());
  fixtures::KeyEmbedder emb(6, 2, "fp-new");
  ASSERT_TRUE(g->backfill({}, emb).finished);
  g->retire("old");
  const std::string msg = error_of([&] { g->rollback(); });
  EXPECT_NE(msg.find("nothing to roll back: 'new' became the deployed model at "), std::string::npos) << msg;
  EXPECT_NE(msg.find("when 'old' was retired, which deleted the embeddings of 'old'"), std::string::npos) << msg;
  // A fresh gallery: nothing has rolled out.
  auto f = Gallery::create(gallery_at(fixtures::temp_dir("rollback_nothing")), {"old", 4, "", ""});
  EXPECT_NE(error_of([&] { f->rollback(); }).find("no model is rolling out; 'old' is deployed"), std::string::npos);
}

TEST(GalleryHistory, RecordsEveryRolloutRollbackAndRetireWithTheGateInStatus) {
  const auto dir = fixtures::temp_dir("history");
  auto g = rolled_out(dir, passed_gate());
  g->rollback();
  RolloutGate forced = app::gate_from_feature_sets(at_angles(kOld), at_angles(kBad), kModels, 1);
  forced.probe = "features o b";
  app::judge_gate(forced, true, kModels);
  g->rollout({"new", 6, "", "fp-new"}, forced);
  fixtures::KeyEmbedder emb(6, 2, "fp-new");
  ASSERT_TRUE(g->backfill({}, emb).finished);
  g->retire("old");

  const auto st = g->status();
  ASSERT_EQ(st.history.size(), 4u);
  EXPECT_EQ(st.history[0].event, "rollout");
  EXPECT_EQ(st.history[0].gate.decision, "passed");
  EXPECT_NEAR(st.history[0].gate.new_old_map, 8.0 / 9, 1e-9);  // stored and read back
  EXPECT_NEAR(st.history[0].gate.old_old_top1, 4.0 / 6, 1e-9);
  EXPECT_EQ(st.history[1].event, "rollback");
  EXPECT_EQ(st.history[1].note, "kept 0 of 30 embeddings for a later rollout");
  EXPECT_EQ(st.history[2].gate.decision, "forced");
  EXPECT_NEAR(st.history[2].gate.new_old_map, 89.0 / 180, 1e-9);
  EXPECT_EQ(st.history[3].event, "retire");
  EXPECT_EQ(st.history[3].model, "old");
  EXPECT_EQ(st.history[3].deployed, "new");
  EXPECT_EQ(st.history[3].note, "cutover to 'new'; 30 embeddings deleted");
  // The deployed model's rollout is the current one: its gate is what status shows.
  ASSERT_NE(current_rollout(st), nullptr);
  EXPECT_EQ(current_rollout(st)->id, st.history[2].id);

  const std::string text = app::gallery_status_text(st, false);
  EXPECT_NE(text.find("gate of new: new→old mAP 49.44% <= old/old 69.31%"), std::string::npos) << text;
  EXPECT_NE(text.find("rollback new"), std::string::npos) << text;
  EXPECT_NE(text.find("gate passed (new→old mAP 88.89%, old/old 69.31%)"), std::string::npos) << text;
  const auto j = nlohmann::json::parse(app::gallery_status_text(st, true));
  ASSERT_EQ(j["history"].size(), 4u);
  EXPECT_EQ(j["history"][1]["event"], "rollback");
  EXPECT_NEAR(j["gate"]["gate"]["new_old"]["map"].get<double>(), 89.0 / 180, 1e-9);
  EXPECT_EQ(j["gate"]["gate"]["decision"], "forced");
}

// SQLite only (no pg. variant): the PostgreSQL schema has had a history table from its first version.
TEST(GalleryHistory, AGalleryFromBeforeTheHistoryIsUpgradedAtItsFirstWritableOpen) {
  const auto dir = fixtures::temp_dir("history_upgrade");
  Gallery::create(dir, {"old", 4, "", ""})->rollout({"new", 6, "", ""});
  {
    // Back to the earlier schema: no history table, the models CHECK without rolled_back.
    sql::Db db(Store::db_path(dir), false, false);
    db.exec("PRAGMA foreign_keys = OFF");
    db.exec(R"sql(BEGIN;
      DROP TABLE history;
      CREATE TABLE m2 (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,
        dim INTEGER NOT NULL CHECK (dim > 0), path TEXT NOT NULL DEFAULT '', config_hash TEXT NOT NULL DEFAULT '',
        role TEXT NOT NULL CHECK (role IN ('deployed', 'rolling_out', 'retired')), created TEXT NOT NULL);
      INSERT INTO m2 SELECT * FROM models; DROP TABLE models; ALTER TABLE m2 RENAME TO models; COMMIT;)sql");
    EXPECT_NE(error_of([&] { db.exec("UPDATE models SET role = 'rolled_back'"); }).find("CHECK"), std::string::npos);
  }
  EXPECT_TRUE(Store::open(dir, true)->history().empty());  // read-only: read as it is
  auto g = Gallery::open(dir);
  EXPECT_EQ(g->rollback().role, Role::kRolledBack);
  const auto models = g->models();
  ASSERT_EQ(models.size(), 2u);
  EXPECT_EQ(models[0].name, "old");
  EXPECT_EQ(models[0].role, Role::kDeployed);
  EXPECT_EQ(models[1].version_id, 2);  // versions still point at the same model ids
  ASSERT_EQ(g->history().size(), 1u);
  EXPECT_EQ(Store::open(dir, true)->integrity_check(), "ok");
}

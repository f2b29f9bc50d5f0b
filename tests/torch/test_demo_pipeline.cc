// The demo pipeline end to end on a tiny generated IDX set (one epoch, a few hundred
// images): every stage's outputs exist and agree with each other. Not accuracy.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "dualtune/features/feature_set.h"
#include "dualtune/features/npy.h"
#include "dualtune/util/atomic_file.h"
#include "tiny_data.h"

using namespace dualtune;
namespace fs = std::filesystem;

TEST(DemoPipeline, EveryStageWritesConsistentOutputs) {
  const auto dir = testdata::temp_dir("demo");
  testdata::write_tiny_idx(dir + "/data", 320, 80, 8);
  const std::string cmd = std::string(DUALTUNE_BINARY) + " demo --out " + dir + "/out --data-root " + dir +
                          "/data --epochs-old 1 --epochs-new 1 --threads 1 --set data.workers=1";
  int status = 0;
  const auto out = testdata::run_command(cmd, &status);
  ASSERT_EQ(status, 0) << out;
  const std::string sdir = dir + "/out/default/seed0";
  const std::vector<std::string> models{"old", "independent", "l2", "bct", "dual-tuning"};
  for (const auto& m : models) {
    const auto meta = nlohmann::json::parse(read_file(sdir + "/" + m + "/meta.json"));
    EXPECT_TRUE(meta["complete"].get<bool>()) << m;
    EXPECT_EQ(meta["num_classes"].get<int>(), m == "old" ? 5 : 8) << m;
    EXPECT_EQ(meta["compat_method"].get<std::string>(), m == "old" ? "independent" : m);
    const auto f = features::FeatureSet::load(sdir + "/features/" + m);
    EXPECT_EQ(f.n, 80) << m;  // every test image
    EXPECT_EQ(f.d, 128) << m;
  }
  // Compatible runs that need prototypes store the ones they used: all 8 new classes.
  for (const char* m : {"bct", "dual-tuning"}) EXPECT_TRUE(fs::exists(sdir + "/" + m + "/prototypes/prototypes.npy"));
  EXPECT_FALSE(fs::exists(sdir + "/l2/prototypes"));
  const auto rep = nlohmann::json::parse(read_file(sdir + "/report/report.json"));
  EXPECT_EQ(rep.dump().find("dual-tuning") != std::string::npos, true);
  EXPECT_TRUE(fs::exists(sdir + "/report/report.md"));
  const auto summary = read_file(dir + "/out/default/summary.md");
  for (const auto& m : models)
    if (m != "old") EXPECT_NE(summary.find("| " + m + " |"), std::string::npos) << summary;
  // A rerun reuses every finished run (same config hash) instead of retraining.
  const auto again = testdata::run_command(cmd, &status);
  ASSERT_EQ(status, 0) << again;
  size_t reused = 0;
  for (size_t pos = 0; (pos = again.find("reusing", pos)) != std::string::npos; ++pos) ++reused;
  EXPECT_EQ(reused, models.size()) << again;

  // An ablation variant (--variant TAG --set ...) reuses the old model, trains
  // dual-tuning@TAG, and writes its own report, gallery and transition beside the
  // default's, which it leaves alone.
  const auto default_curve = read_file(sdir + "/report/transition/curve.md");
  const auto variant = testdata::run_command(
      cmd + " --methods dual-tuning --variant sp --set compat.proto_form=triplet --set compat.proto_margin_unit=spacing",
      &status);
  ASSERT_EQ(status, 0) << variant;
  EXPECT_NE(variant.find("reusing " + sdir + "/old"), std::string::npos) << variant;
  EXPECT_NE(variant.find("prototype distances in units of the old model's class spacing"), std::string::npos)
      << variant;
  const auto vmeta = nlohmann::json::parse(read_file(sdir + "/dual-tuning@sp/meta.json"));
  EXPECT_TRUE(vmeta["complete"].get<bool>());
  EXPECT_NE(read_file(sdir + "/report_sp/transition/curve.md").find("dual-tuning@sp"), std::string::npos);
  EXPECT_TRUE(fs::exists(sdir + "/gallery_sp/random"));
  EXPECT_EQ(read_file(sdir + "/report/transition/curve.md"), default_curve);
  EXPECT_NE(read_file(dir + "/out/default/summary_sp.md").find("| dual-tuning@sp |"), std::string::npos);
  // --no-transition: the same runs reused and evaluated, no transition, none in the summary.
  const auto plain = testdata::run_command(cmd + " --methods dual-tuning --no-transition", &status);
  ASSERT_EQ(status, 0) << plain;
  EXPECT_EQ(plain.find("gallery transition"), std::string::npos) << plain;
  const auto plain_summary = read_file(dir + "/out/default/summary.md");
  EXPECT_NE(plain_summary.find("| dual-tuning |"), std::string::npos) << plain_summary;
  EXPECT_EQ(plain_summary.find("Gallery transition"), std::string::npos) << plain_summary;

  // The single commands agree with what the demo did.
  const std::string bin = DUALTUNE_BINARY;
  auto ok = [&](const std::string& c) {
    const auto o = testdata::run_command(c, &status);
    EXPECT_EQ(status, 0) << c << "\n" << o;
    return o;
  };
  // The demo extracts in its --precision (auto); the same rule here (bf16 on a CPU with
  // bf16 instructions, fp32 elsewhere).
  ok(bin + " extract --model " + sdir + "/old --root " + dir + "/data --out " + dir +
     "/ex --threads 1 --precision auto");
  const auto ex = features::FeatureSet::load(dir + "/ex");
  const auto demo_old = features::FeatureSet::load(sdir + "/features/old");
  ASSERT_EQ(ex.features.size(), demo_old.features.size());
  for (size_t i = 0; i < ex.features.size(); ++i) ASSERT_NEAR(ex.features[i], demo_old.features[i], 1e-4) << i;
  EXPECT_EQ(ex.labels, demo_old.labels);

  // Prototypes over the new training set equal those the dual-tuning run stored.
  ok(bin + " prototypes --old " + sdir + "/old --root " + dir + "/data --split train --out " + dir + "/pr --threads 1");
  const auto p = npy::load(dir + "/pr/prototypes.npy");
  const auto used = npy::load(sdir + "/dual-tuning/prototypes/prototypes.npy");
  EXPECT_EQ(p.shape, (std::vector<int64_t>{8, 128}));
  ASSERT_EQ(p.shape, used.shape);
  for (size_t i = 0; i < p.f32.size(); ++i) ASSERT_NEAR(p.f32[i], used.f32[i], 1e-4) << i;

  // eval straight from models: extracts, then evaluates leave-one-out on the 80 test images.
  ok(bin + " eval --model old=" + sdir + "/old --model dual=" + sdir + "/dual-tuning --old old --root " + dir +
     "/data --out " + dir + "/evalm --threads 1");
  const auto rep2 = nlohmann::json::parse(read_file(dir + "/evalm/report.json"));
  EXPECT_EQ(rep2["num_query"].get<int>(), 80);
  EXPECT_EQ(rep2["upgrades"].size(), 1u);
  // Bad input: a model directory that is not a run gives a clear error and a non-zero exit.
  const auto bad = testdata::run_command(bin + " extract --model " + dir + " --root " + dir + "/data --out " + dir + "/bad", &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(bad.find("config.yml missing"), std::string::npos) << bad;
}

// --jobs 2: trainings run as child processes side by side (one thread each). They give
// the same models as one after the other in-process with one thread; a retrained old
// model makes the compatible runs of its seed stale; a failing child fails the demo and
// names the training.
TEST(DemoPipeline, SideBySideTrainingsMatchSequentialAndTrackTheOldModel) {
  const auto dir = testdata::temp_dir("demo_jobs");
  testdata::write_tiny_idx(dir + "/data", 240, 60, 8);
  const std::string base = std::string(DUALTUNE_BINARY) + " demo --data-root " + dir +
                           "/data --epochs-new 1 --methods independent,l2 --set data.workers=1 --epochs-old ";
  int status = 0;
  const auto seq = testdata::run_command(base + "1 --threads 1 --jobs 1 --out " + dir + "/seq", &status);
  ASSERT_EQ(status, 0) << seq;
  EXPECT_EQ(seq.find("(process "), std::string::npos) << seq;
  const auto par = testdata::run_command(base + "1 --threads 2 --jobs 2 --out " + dir + "/par", &status);
  ASSERT_EQ(status, 0) << par;
  EXPECT_NE(par.find("(process "), std::string::npos) << par;
  EXPECT_NE(par.find(", 1 thread)"), std::string::npos) << par;
  for (const char* m : {"old", "independent", "l2"}) {
    const auto a = features::FeatureSet::load(dir + "/seq/default/seed0/features/" + m);
    const auto b = features::FeatureSet::load(dir + "/par/default/seed0/features/" + m);
    ASSERT_EQ(a.features.size(), b.features.size()) << m;
    for (size_t i = 0; i < a.features.size(); ++i) ASSERT_NEAR(a.features[i], b.features[i], 1e-5) << m << " " << i;
  }
  // The old model changes (2 epochs): it and l2, which was trained against it, are
  // retrained; independent is reused.
  const auto stale = testdata::run_command(base + "2 --threads 2 --jobs 2 --out " + dir + "/par", &status);
  ASSERT_EQ(status, 0) << stale;
  EXPECT_NE(stale.find("reusing " + dir + "/par/default/seed0/independent"), std::string::npos) << stale;
  EXPECT_NE(stale.find("training " + dir + "/par/default/seed0/old"), std::string::npos) << stale;
  EXPECT_NE(stale.find("training " + dir + "/par/default/seed0/l2"), std::string::npos) << stale;
  const auto old_meta = nlohmann::json::parse(read_file(dir + "/par/default/seed0/old/meta.json"));
  const auto l2_meta = nlohmann::json::parse(read_file(dir + "/par/default/seed0/l2/meta.json"));
  EXPECT_EQ(l2_meta["old_config_hash"], old_meta["config_hash"]);
  // bct cannot read its prototypes: its child fails, the demo says which training and exits non-zero.
  const auto bad = testdata::run_command(std::string(DUALTUNE_BINARY) + " demo --data-root " + dir +
                                             "/data --epochs-old 1 --epochs-new 1 --methods independent,bct --jobs 2 "
                                             "--threads 2 --set compat.prototypes=" + dir + "/missing --out " + dir + "/bad",
                                         &status);
  EXPECT_NE(status, 0) << bad;
  EXPECT_NE(bad.find("training of " + dir + "/bad/default/seed0/bct exited with code"), std::string::npos) << bad;
  EXPECT_FALSE(fs::exists(dir + "/bad/default/summary.md"));
}

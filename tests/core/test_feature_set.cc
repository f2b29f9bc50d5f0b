// FeatureSet directories: round trip, optional files, size mismatches rejected.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "dualtune/features/feature_set.h"
#include "dualtune/features/npy.h"
#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"

namespace fs = std::filesystem;
using dualtune::Error;
using dualtune::features::FeatureSet;

namespace {

std::string temp_dir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("dt_test_fs_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p.string();
}

FeatureSet small_set() {
  FeatureSet s;
  s.n = 3;
  s.d = 2;
  s.features = {1, 0, 0, 1, 0.5f, -0.5f};
  s.labels = {0, 1, -1};
  s.cams = {2, 3, 4};
  s.paths = {"a/x.png", "b/y.png", "c/z.png"};
  s.class_names = {"shirt", "boot"};
  return s;
}

std::string load_error(const std::string& dir) {
  try {
    FeatureSet::load(dir);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected dualtune::Error";
  return "";
}

}  // namespace

TEST(FeatureSet, RoundTrip) {
  const std::string dir = temp_dir("roundtrip");
  const FeatureSet s = small_set();
  s.save(dir);
  const FeatureSet t = FeatureSet::load(dir);
  EXPECT_EQ(t.n, 3);
  EXPECT_EQ(t.d, 2);
  EXPECT_EQ(t.features, s.features);
  EXPECT_EQ(t.labels, s.labels);
  EXPECT_EQ(t.cams, s.cams);
  EXPECT_EQ(t.paths, s.paths);
  EXPECT_EQ(t.class_names, s.class_names);
  EXPECT_NE(dualtune::read_file(dir + "/classes.json").find("\"classes\""), std::string::npos);
  for (const auto& e : fs::directory_iterator(dir)) EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos);
  fs::remove_all(dir);
}

TEST(FeatureSet, OptionalFilesDefault) {
  const std::string dir = temp_dir("optional");
  FeatureSet s = small_set();
  s.cams.clear();
  s.paths.clear();
  s.class_names.clear();
  s.save(dir);
  EXPECT_FALSE(fs::exists(dir + "/cams.npy"));
  const FeatureSet t = FeatureSet::load(dir);
  EXPECT_EQ(t.cams, (std::vector<int64_t>{-1, -1, -1}));
  EXPECT_EQ(t.paths, (std::vector<std::string>{"", "", ""}));
  EXPECT_TRUE(t.class_names.empty());
  fs::remove_all(dir);
}

TEST(FeatureSet, RejectsMismatchedSizes) {
  const std::string dir = temp_dir("mismatch");
  small_set().save(dir);
  const int64_t two[2] = {0, 1};
  dualtune::npy::save_i64(dir + "/labels.npy", two, {2});
  std::string msg = load_error(dir);
  EXPECT_NE(msg.find("labels.npy"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected shape (3,), found (2,)"), std::string::npos) << msg;

  small_set().save(dir);
  dualtune::npy::save_i64(dir + "/cams.npy", two, {2});
  msg = load_error(dir);
  EXPECT_NE(msg.find("cams.npy"), std::string::npos) << msg;

  small_set().save(dir);
  dualtune::write_text_atomic(dir + "/paths.txt", "a\nb\n");
  msg = load_error(dir);
  EXPECT_NE(msg.find("paths.txt: expected 3 lines"), std::string::npos) << msg;
  EXPECT_NE(msg.find("found 2"), std::string::npos) << msg;

  small_set().save(dir);
  const float flat[6] = {0, 0, 0, 0, 0, 0};
  dualtune::npy::save_f32(dir + "/features.npy", flat, {6});
  msg = load_error(dir);
  EXPECT_NE(msg.find("expected a 2-D array"), std::string::npos) << msg;

  small_set().save(dir);
  const float three[3] = {0, 1, 2};
  dualtune::npy::save_f32(dir + "/labels.npy", three, {3});
  msg = load_error(dir);
  EXPECT_NE(msg.find("expected dtype <i8 (int64), found <f4"), std::string::npos) << msg;

  small_set().save(dir);
  dualtune::write_text_atomic(dir + "/classes.json", "{\"classes\": [\"only\"]}");
  msg = load_error(dir);  // label 1 needs at least 2 class names
  EXPECT_NE(msg.find("expected label < 1"), std::string::npos) << msg;
  fs::remove_all(dir);
}

TEST(FeatureSet, RejectsNonFiniteFeaturesNamingRow) {
  const std::string dir = temp_dir("nan");
  small_set().save(dir);
  const float bad[6] = {1, 0, 0, 1, NAN, 0};
  dualtune::npy::save_f32(dir + "/features.npy", bad, {3, 2});
  const std::string msg = load_error(dir);
  EXPECT_NE(msg.find("features.npy: row 2 component 0"), std::string::npos) << msg;
  FeatureSet s = small_set();
  s.features[1] = INFINITY;
  EXPECT_THROW(s.save(dir), Error);
  fs::remove_all(dir);
}

TEST(FeatureSet, CheckNamesTheMismatch) {
  FeatureSet s = small_set();
  s.labels.pop_back();
  try {
    s.check();
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected 3 labels, found 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(FeatureSet::load("/nonexistent/dir"), Error);
}

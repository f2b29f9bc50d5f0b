// FeatureSet directories and .npz archives: round trip, optional files, numpy's default
// dtypes, size mismatches rejected.
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
  EXPECT_NE(msg.find("labels.npy: expected integers (int64, int32, uint8, uint16, uint32 or uint64), found dtype "
                     "float32 ('<f4')"),
            std::string::npos)
      << msg;

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

namespace {
std::string numpy_fixture(const std::string& name) {
  return std::string(DUALTUNE_SOURCE_DIR) + "/tests/fixtures/numpy/" + name;
}
}  // namespace

TEST(FeatureSet, ReadsNpzArchivesAsNumpyWritesThem) {
  // np.savez (stored) and np.savez_compressed (deflate) of float64 Fortran-order
  // features, int32 labels and uint8 cams (make_numpy_fixtures.py).
  for (const char* file : {"features_stored.npz", "features_deflate.npz"}) {
    const FeatureSet s = FeatureSet::load(numpy_fixture(file));
    EXPECT_EQ(s.n, 2) << file;
    EXPECT_EQ(s.d, 3) << file;
    EXPECT_EQ(s.features, (std::vector<float>{0.5f, -1.25f, 3.f, 2.f, 0.125f, -4.f})) << file;
    EXPECT_EQ(s.labels, (std::vector<int64_t>{3, 0})) << file;
    EXPECT_EQ(s.cams, (std::vector<int64_t>{1, 2})) << file;
    EXPECT_EQ(s.paths, (std::vector<std::string>{"", ""})) << file;
  }
  // Arrays dualtune does not read (here paths as unicode strings) are ignored, and said so.
  ::testing::internal::CaptureStderr();
  const FeatureSet e = FeatureSet::load(numpy_fixture("features_extra.npz"));
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(e.features, (std::vector<float>{0.5f, -1.25f, 3.f, 2.f, 0.125f, -4.f}));  // float16 in the archive
  EXPECT_EQ(e.cams, (std::vector<int64_t>{-1, -1}));
  EXPECT_NE(err.find("features_extra.npz: ignoring arrays 'paths' (read: features, labels, cams)"), std::string::npos)
      << err;
  EXPECT_NE(err.find("features_extra.npz[features]: float16 -> float32"), std::string::npos) << err;
  // Without labels: the arrays expected and those found.
  const std::string msg = load_error(numpy_fixture("no_labels.npz"));
  EXPECT_NE(msg.find("no_labels.npz: expected arrays 'features' and 'labels' (np.savez(path, features=..., "
                     "labels=...)), found 'features'"),
            std::string::npos)
      << msg;
}

TEST(FeatureSet, DirectoryAcceptsNumpyDefaultDtypes) {
  // features.npy float64 in Fortran order, labels.npy int32 (what numpy gives by default
  // for np.asfortranarray(x) and np.array(list_of_ints, dtype=np.int32)).
  const std::string dir = temp_dir("dtypes");
  fs::create_directories(dir);
  fs::copy_file(numpy_fixture("f8_2x3_fortran.npy"), dir + "/features.npy");
  const int32_t labels[2] = {1, 0};
  std::string raw(reinterpret_cast<const char*>(labels), sizeof labels);
  std::string dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }";
  while ((10 + dict.size() + 1) % 64) dict += ' ';
  dict += '\n';
  dualtune::write_text_atomic(dir + "/labels.npy", std::string("\x93NUMPY\x01\x00", 8) + static_cast<char>(dict.size()) +
                                                       std::string(1, '\0') + dict + raw);
  const FeatureSet s = FeatureSet::load(dir);
  EXPECT_EQ(s.features, (std::vector<float>{0.5f, -1.25f, 3.f, 2.f, 0.125f, -4.f}));
  EXPECT_EQ(s.labels, (std::vector<int64_t>{1, 0}));
  // Integer features and float labels are refused, naming the dtype found.
  fs::copy_file(numpy_fixture("i4_3.npy"), dir + "/features.npy", fs::copy_options::overwrite_existing);
  std::string msg = load_error(dir);
  EXPECT_NE(msg.find("features.npy: expected float features (float32, float64 or float16), found dtype int32 ('<i4')"),
            std::string::npos)
      << msg;
  fs::remove_all(dir);
}

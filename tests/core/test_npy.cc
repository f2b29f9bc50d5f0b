// npy reader/writer: byte layout against the spec, round trips, numpy's default dtypes
// and Fortran order (hand-made bytes and files written by numpy:
// tests/fixtures/numpy/make_numpy_fixtures.py), strict errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "dualtune/features/npy.h"
#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"

namespace fs = std::filesystem;
using namespace dualtune;

namespace {

std::string temp_dir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("dt_test_npy_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

std::string bytes_of_2x3() {
  const std::string dir = temp_dir("bytes");
  const float data[6] = {1, 2, 3, 4, 5, 6};
  npy::save_f32(dir + "/a.npy", data, {2, 3});
  std::string b = read_file(dir + "/a.npy");
  fs::remove_all(dir);
  return b;
}

/// An npy 1.0 file built by hand: header dict padded to a multiple of 64, then raw.
std::string npy_bytes(const std::string& descr, bool fortran, const std::string& shape, const std::string& raw) {
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") +
                     ", 'shape': " + shape + ", }";
  while ((10 + dict.size() + 1) % 64 != 0) dict += ' ';
  dict += '\n';
  std::string b = "\x93NUMPY";
  b += '\x01';
  b += '\x00';
  b += static_cast<char>(dict.size() & 0xff);
  b += static_cast<char>(dict.size() >> 8);
  return b + dict + raw;
}

template <class T>
std::string raw_of(std::initializer_list<T> values) {
  std::string r;
  for (T v : values) r.append(reinterpret_cast<const char*>(&v), sizeof v);
  return r;
}

std::string fixture(const std::string& name) {
  return std::string(DUALTUNE_SOURCE_DIR) + "/tests/fixtures/numpy/" + name;
}

std::string expect_error(const std::string& bytes) {
  try {
    npy::parse(bytes, "x.npy");
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected dualtune::Error";
  return "";
}

}  // namespace

TEST(Npy, HeaderBytesMatchSpecFor2x3Float32) {
  // numpy.lib.format 1.0: magic "\x93NUMPY", version 1 0, uint16 LE HLEN, dict, padding.
  // dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
  //   "{'descr': '<f4', "          = 17 chars
  //   "'fortran_order': False, "   = 24 chars  (41)
  //   "'shape': (2, 3), "          = 17 chars  (58)
  //   "}"                          =  1 char   (59)
  // 10 (preamble) + 59 + 1 ('\n') = 70 -> padded up to 128, so HLEN = 118 = 0x76,
  // i.e. 58 spaces between '}' and '\n'. Data: 6 float32 = 24 bytes; file = 152 bytes.
  const std::string b = bytes_of_2x3();
  ASSERT_EQ(b.size(), 152u);
  const unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 0x01, 0x00, 0x76, 0x00};
  for (int i = 0; i < 10; ++i) EXPECT_EQ(static_cast<unsigned char>(b[i]), pre[i]) << "byte " << i;
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  ASSERT_EQ(dict.size(), 59u);
  EXPECT_EQ(b.substr(10, 59), dict);
  EXPECT_EQ(b.substr(69, 58), std::string(58, ' '));
  EXPECT_EQ(b[127], '\n');
  // 1.0f = 0x3F800000, little endian: 00 00 80 3F; 6.0f = 0x40C00000.
  EXPECT_EQ(b.substr(128, 4), std::string("\x00\x00\x80\x3f", 4));
  EXPECT_EQ(b.substr(148, 4), std::string("\x00\x00\xc0\x40", 4));
}

TEST(Npy, RoundTripsFloat32AndInt64) {
  const std::string dir = temp_dir("roundtrip");
  const float f[6] = {1.5f, -2.f, 3.25f, 0.f, 1e-8f, -7.f};
  npy::save_f32(dir + "/f.npy", f, {2, 3});
  const npy::Array a = npy::load(dir + "/f.npy");
  EXPECT_EQ(a.descr, "<f4");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.f32, std::vector<float>(f, f + 6));
  EXPECT_EQ(a.numel(), 6);

  const int64_t l[5] = {-1, 0, 7, int64_t(1) << 40, 3};
  npy::save_i64(dir + "/l.npy", l, {5});
  const npy::Array b = npy::load(dir + "/l.npy");
  EXPECT_EQ(b.descr, "<i8");
  EXPECT_EQ(b.shape, (std::vector<int64_t>{5}));
  EXPECT_EQ(b.i64, std::vector<int64_t>(l, l + 5));
  // 1-D shapes are written as numpy does: "(5,)".
  EXPECT_NE(read_file(dir + "/l.npy").find("'shape': (5,), }"), std::string::npos);

  npy::save_f32(dir + "/empty.npy", nullptr, {0, 4});
  EXPECT_EQ(npy::load(dir + "/empty.npy").shape, (std::vector<int64_t>{0, 4}));
  for (const auto& e : fs::directory_iterator(dir)) EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos);
  fs::remove_all(dir);
}

TEST(Npy, RejectsTruncatedData) {
  std::string b = bytes_of_2x3();
  b.pop_back();  // 23 of 24 data bytes
  const std::string msg = expect_error(b);
  EXPECT_NE(msg.find("x.npy"), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated data"), std::string::npos) << msg;
  EXPECT_NE(msg.find("needs 24 bytes, found 23"), std::string::npos) << msg;
  EXPECT_NE(expect_error(b.substr(0, 50)).find("truncated header"), std::string::npos);
  EXPECT_NE(expect_error(b.substr(0, 5)).find("truncated"), std::string::npos);
}

TEST(Npy, RejectsTrailingBytes) {
  const std::string msg = expect_error(bytes_of_2x3() + "xy");
  EXPECT_NE(msg.find("2 trailing bytes"), std::string::npos) << msg;
}

TEST(Npy, RejectsBadMagic) {
  std::string b = bytes_of_2x3();
  b[1] = 'X';
  const std::string msg = expect_error(b);
  EXPECT_NE(msg.find("bad magic"), std::string::npos) << msg;
  EXPECT_NE(msg.find("x.npy"), std::string::npos) << msg;
}

TEST(Npy, RejectsDtypesNumpyDoesNotUseForFeaturesOrLabels) {
  std::string b = bytes_of_2x3();
  b.replace(b.find("<f4"), 3, "<c8");  // same length: header stays valid, dtype complex64
  std::string msg = expect_error(b);
  EXPECT_NE(msg.find("x.npy: unsupported dtype: found '<c8'; accepted: float32 ('<f4'), float64 ('<f8'), float16 "
                     "('<f2') for features; int64 ('<i8'), int32 ('<i4'), uint8 ('|u1'), uint16 ('<u2'), uint32 "
                     "('<u4'), uint64 ('<u8') for labels"),
            std::string::npos)
      << msg;
  // Files numpy wrote: big-endian float32, unicode strings, complex, bool.
  for (const auto& [file, descr] : std::vector<std::pair<std::string, std::string>>{
           {"f4_big_endian.npy", ">f4"}, {"unicode_2.npy", "<U5"}, {"c8_2.npy", "<c8"}, {"bool_2.npy", "|b1"}}) {
    try {
      npy::load(fixture(file));
      ADD_FAILURE() << file << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("unsupported dtype: found '" + descr + "'; accepted: float32"),
                std::string::npos)
          << e.what();
    }
  }
}

TEST(Npy, ReadsFortranOrderAsCOrder) {
  // Column-major 2 × 3: the file holds column 0 (1, 2), column 1 (3, 4), column 2 (5, 6).
  const auto a = npy::parse(npy_bytes("<f4", true, "(2, 3)", raw_of<float>({1, 2, 3, 4, 5, 6})), "f.npy");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.f32, (std::vector<float>{1, 3, 5, 2, 4, 6}));
  EXPECT_EQ(a.conversions, (std::vector<std::string>{"Fortran order -> C order"}));
  // 2 × 2 × 2, int64: F-order element (i, j, k) is at i + 2j + 4k, C-order at 4i + 2j + k.
  const auto c = npy::parse(npy_bytes("<i8", true, "(2, 2, 2)", raw_of<int64_t>({0, 1, 2, 3, 4, 5, 6, 7})), "c.npy");
  EXPECT_EQ(c.i64, (std::vector<int64_t>{0, 4, 2, 6, 1, 5, 3, 7}));
  // 1-D: the same bytes in either order, nothing converted.
  const auto v = npy::parse(npy_bytes("<i8", true, "(3,)", raw_of<int64_t>({5, 6, 7})), "v.npy");
  EXPECT_EQ(v.i64, (std::vector<int64_t>{5, 6, 7}));
  EXPECT_TRUE(v.conversions.empty());
}

TEST(Npy, ConvertsFloat64AndFloat16ToFloat32) {
  const auto d = npy::parse(npy_bytes("<f8", false, "(3,)", raw_of<double>({0.1, -2.5, 1e-30})), "d.npy");
  EXPECT_TRUE(d.is_float());
  EXPECT_EQ(d.f32, (std::vector<float>{0.1f, -2.5f, 1e-30f}));
  EXPECT_EQ(d.conversions, (std::vector<std::string>{"float64 -> float32"}));
  // binary16: 0x3c00 = 1, 0xc000 = -2, 0x3555 = 1365/4096 = 0.333251953125, 0x0001 = 2^-24
  // (smallest subnormal), 0x7bff = 65504 (largest), 0x8000 = -0, 0x7c00 = +inf.
  const auto h = npy::parse(
      npy_bytes("<f2", false, "(7,)", raw_of<uint16_t>({0x3c00, 0xc000, 0x3555, 0x0001, 0x7bff, 0x8000, 0x7c00})),
      "h.npy");
  ASSERT_EQ(h.f32.size(), 7u);
  EXPECT_EQ(h.f32[0], 1.0f);
  EXPECT_EQ(h.f32[1], -2.0f);
  EXPECT_EQ(h.f32[2], 0.333251953125f);
  EXPECT_EQ(h.f32[3], std::ldexp(1.0f, -24));
  EXPECT_EQ(h.f32[4], 65504.0f);
  EXPECT_TRUE(h.f32[5] == 0.0f && std::signbit(h.f32[5]));
  EXPECT_TRUE(std::isinf(h.f32[6]));
  EXPECT_EQ(h.conversions, (std::vector<std::string>{"float16 -> float32"}));
  // A float64 that float32 cannot hold is refused, naming the element (NaN / inf pass
  // through: the feature reader rejects them naming the row).
  const std::string msg =
      expect_error(npy_bytes("<f8", false, "(2,)", raw_of<double>({1.0, 1e300})));
  EXPECT_NE(msg.find("element 1 = 1e+300 is outside the float32 range (float64 -> float32)"), std::string::npos)
      << msg;
}

TEST(Npy, ConvertsInt32AndUnsignedToInt64) {
  const auto i = npy::parse(npy_bytes("<i4", false, "(3,)", raw_of<int32_t>({-1, 2147483647, 0})), "i.npy");
  EXPECT_TRUE(i.is_integer());
  EXPECT_EQ(i.i64, (std::vector<int64_t>{-1, 2147483647, 0}));
  EXPECT_EQ(i.conversions, (std::vector<std::string>{"int32 -> int64"}));
  EXPECT_EQ(npy::parse(npy_bytes("|u1", false, "(2,)", std::string("\x07\xff", 2)), "u").i64,
            (std::vector<int64_t>{7, 255}));
  EXPECT_EQ(npy::parse(npy_bytes("<u2", false, "(1,)", raw_of<uint16_t>({65535})), "u").i64,
            (std::vector<int64_t>{65535}));
  EXPECT_EQ(npy::parse(npy_bytes("<u4", false, "(1,)", raw_of<uint32_t>({4294967295u})), "u").i64,
            (std::vector<int64_t>{4294967295}));
  EXPECT_EQ(npy::parse(npy_bytes("<u8", false, "(1,)", raw_of<uint64_t>({uint64_t(1) << 62})), "u").i64,
            (std::vector<int64_t>{int64_t(1) << 62}));
  const std::string msg = expect_error(npy_bytes("<u8", false, "(2,)", raw_of<uint64_t>({1, uint64_t(1) << 63})));
  EXPECT_NE(msg.find("element 1 = 9223372036854775808 does not fit int64 (uint64 -> int64)"), std::string::npos)
      << msg;
}

TEST(Npy, ReadsWhatNumpyWrote) {
  // Written by numpy 1.24 (make_numpy_fixtures.py): [[0.5, -1.25, 3], [2, 0.125, -4]].
  const std::vector<float> want{0.5f, -1.25f, 3.f, 2.f, 0.125f, -4.f};
  for (const auto& [file, conversions] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"f8_2x3.npy", {"float64 -> float32"}},
           {"f2_2x3.npy", {"float16 -> float32"}},
           {"f4_2x3_fortran.npy", {"Fortran order -> C order"}},
           {"f8_2x3_fortran.npy", {"float64 -> float32", "Fortran order -> C order"}}}) {
    const auto a = npy::load(fixture(file));
    EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3})) << file;
    EXPECT_EQ(a.f32, want) << file;
    EXPECT_EQ(a.conversions, conversions) << file;
  }
  const auto cube = npy::load(fixture("f4_2x3x2_fortran.npy"));  // np.arange(12).reshape(2, 3, 2), F order
  std::vector<float> arange(12);
  for (int i = 0; i < 12; ++i) arange[i] = static_cast<float>(i);
  EXPECT_EQ(cube.f32, arange);
  EXPECT_EQ(npy::load(fixture("i4_3.npy")).i64, (std::vector<int64_t>{7, -1, 2}));
  EXPECT_EQ(npy::load(fixture("u1_3.npy")).i64, (std::vector<int64_t>{7, 255, 2}));
  EXPECT_EQ(npy::load(fixture("u2_3.npy")).i64, (std::vector<int64_t>{7, 65535, 2}));
  EXPECT_EQ(npy::load(fixture("u4_3.npy")).i64, (std::vector<int64_t>{7, 4294967295, 2}));
  EXPECT_EQ(npy::load(fixture("u8_3.npy")).i64, (std::vector<int64_t>{7, int64_t(1) << 40, 2}));
}

TEST(Npy, StatesEachConversionOnceOnStderr) {
  const std::string dir = temp_dir("note");
  write_text_atomic(dir + "/d.npy", npy_bytes("<f8", true, "(2, 2)", raw_of<double>({1, 2, 3, 4})));
  ::testing::internal::CaptureStderr();
  npy::load(dir + "/d.npy");
  npy::load(dir + "/d.npy");
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(err, "dualtune: note: " + dir + "/d.npy: float64 -> float32\n" + "dualtune: note: " + dir +
                     "/d.npy: Fortran order -> C order\n");
  fs::remove_all(dir);
}

TEST(Npy, RejectsUnsupportedVersionAndMalformedHeader) {
  std::string b = bytes_of_2x3();
  b[6] = 4;
  EXPECT_NE(expect_error(b).find("expected 1.0, 2.0 or 3.0, found 4.0"), std::string::npos);
  b = bytes_of_2x3();
  b.replace(b.find("'shape'"), 7, "'shapy'");
  EXPECT_NE(expect_error(b).find("malformed npy header"), std::string::npos);
}

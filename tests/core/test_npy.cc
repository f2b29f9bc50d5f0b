// npy v1.0 reader/writer: byte layout against the spec, round trips, strict errors.
#include <gtest/gtest.h>
#include <unistd.h>

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

TEST(Npy, RejectsWrongDtype) {
  std::string b = bytes_of_2x3();
  b.replace(b.find("<f4"), 3, "<f8");  // same length: header stays valid, dtype float64
  const std::string msg = expect_error(b);
  EXPECT_NE(msg.find("unsupported dtype"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected '<f4' (float32) or '<i8' (int64), found '<f8'"), std::string::npos) << msg;
}

TEST(Npy, RejectsFortranOrder) {
  std::string b = bytes_of_2x3();
  b.replace(b.find("False, "), 7, "True,  ");  // same length
  const std::string msg = expect_error(b);
  EXPECT_NE(msg.find("fortran_order: expected False (C order), found True"), std::string::npos) << msg;
}

TEST(Npy, RejectsUnsupportedVersionAndMalformedHeader) {
  std::string b = bytes_of_2x3();
  b[6] = 3;
  EXPECT_NE(expect_error(b).find("expected 1.0 or 2.0, found 3.0"), std::string::npos);
  b = bytes_of_2x3();
  b.replace(b.find("'shape'"), 7, "'shapy'");
  EXPECT_NE(expect_error(b).find("malformed npy header"), std::string::npos);
}

// .npz archives (features/npz.h, features/zip.h): archives numpy wrote (stored and
// deflate, tests/fixtures/numpy/) and archives built here byte by byte after the ZIP
// specification, then broken one field at a time.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstring>

#include "dualtune/features/npy.h"
#include "dualtune/features/npz.h"
#include "dualtune/features/zip.h"
#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"

using namespace dualtune;

namespace {

void le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

struct Member {
  std::string name, data;  ///< data as stored (already compressed for method 8)
  uint16_t method = 0, flags = 0;
  uint32_t crc = 0;
  uint64_t usize = 0;
};

Member stored(const std::string& name, const std::string& content) {
  return {name, content, 0, 0,
          static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(content.data()), content.size())),
          content.size()};
}

Member deflated(const std::string& name, const std::string& content) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, content.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(content.data()));
  z.avail_in = static_cast<uInt>(content.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  Member m = stored(name, content);
  m.method = 8;
  m.data = out;
  return m;
}

/// Local headers + data, central directory, end record (APPNOTE 4.3.7, 4.3.12, 4.3.16).
/// zip64: the directory's sizes and offsets saturated to 0xffffffff with the values in a
/// ZIP64 extra field (4.5.3), and the ZIP64 end record and locator (4.3.14, 4.3.15), as
/// writers do for large archives.
std::string zip_of(const std::vector<Member>& members, bool zip64 = false) {
  std::string out, central;
  for (const auto& m : members) {
    const size_t offset = out.size();
    le(out, 0x04034b50, 4);
    le(out, 20, 2);
    le(out, m.flags, 2);
    le(out, m.method, 2);
    le(out, 0, 4);  // time, date
    le(out, m.crc, 4);
    le(out, m.data.size(), 4);
    le(out, m.usize, 4);
    le(out, m.name.size(), 2);
    le(out, 0, 2);
    out += m.name + m.data;
    const uint64_t sat = 0xffffffff;
    le(central, 0x02014b50, 4);
    le(central, zip64 ? 45 : 20, 2);
    le(central, zip64 ? 45 : 20, 2);
    le(central, m.flags, 2);
    le(central, m.method, 2);
    le(central, 0, 4);
    le(central, m.crc, 4);
    le(central, zip64 ? sat : m.data.size(), 4);
    le(central, zip64 ? sat : m.usize, 4);
    le(central, m.name.size(), 2);
    le(central, zip64 ? 4 + 24 : 0, 2);  // extra
    le(central, 0, 2);  // comment
    le(central, 0, 2);  // disk
    le(central, 0, 2);  // internal attributes
    le(central, 0, 4);  // external attributes
    le(central, zip64 ? sat : offset, 4);
    central += m.name;
    if (zip64) {  // id 1, 24 bytes: size, compressed size, offset
      le(central, 1, 2);
      le(central, 24, 2);
      le(central, m.usize, 8);
      le(central, m.data.size(), 8);
      le(central, offset, 8);
    }
  }
  const size_t cd_offset = out.size();
  out += central;
  if (zip64) {
    const size_t z64 = out.size();
    le(out, 0x06064b50, 4);
    le(out, 44, 8);  // size of the rest of this record
    le(out, 45, 2);
    le(out, 45, 2);
    le(out, 0, 4);
    le(out, 0, 4);
    le(out, members.size(), 8);
    le(out, members.size(), 8);
    le(out, central.size(), 8);
    le(out, cd_offset, 8);
    le(out, 0x07064b50, 4);  // locator
    le(out, 0, 4);
    le(out, z64, 8);
    le(out, 1, 4);
  }
  le(out, 0x06054b50, 4);
  le(out, 0, 4);
  le(out, zip64 ? 0xffff : members.size(), 2);
  le(out, zip64 ? 0xffff : members.size(), 2);
  le(out, zip64 ? 0xffffffff : central.size(), 4);
  le(out, zip64 ? 0xffffffff : cd_offset, 4);
  le(out, 0, 2);
  return out;
}

std::string npy_i8(std::initializer_list<int64_t> v) {
  std::string dict = "{'descr': '<i8', 'fortran_order': False, 'shape': (" + std::to_string(v.size()) + ",), }";
  while ((10 + dict.size() + 1) % 64) dict += ' ';
  dict += '\n';
  std::string b("\x93NUMPY\x01\x00", 8);
  b += static_cast<char>(dict.size());
  b += '\0';
  b += dict;
  for (int64_t x : v) b.append(reinterpret_cast<const char*>(&x), 8);
  return b;
}

std::string error_of(const std::string& bytes) {
  try {
    npy::npz_members(bytes, "t.npz");
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected dualtune::Error";
  return "";
}

std::string fixture(const std::string& name) {
  return read_file(std::string(DUALTUNE_SOURCE_DIR) + "/tests/fixtures/numpy/" + name);
}

}  // namespace

TEST(Npz, ReadsStoredAndDeflatedMembers) {
  const std::string a = npy_i8({1, 2, 3}), b = npy_i8({-7});
  for (const auto& zip : {zip_of({stored("a.npy", a), stored("b.npy", b)}),
                          zip_of({deflated("a.npy", a), deflated("b.npy", b)})}) {
    const auto m = npy::npz_members(zip, "t.npz");
    ASSERT_EQ(m.size(), 2u);
    EXPECT_EQ(m.at("a"), a);
    EXPECT_EQ(npy::parse(m.at("a"), "a").i64, (std::vector<int64_t>{1, 2, 3}));
    EXPECT_EQ(npy::parse(m.at("b"), "b").i64, (std::vector<int64_t>{-7}));
  }
}

TEST(Npz, ReadsZip64Directories) {
  const std::string a = npy_i8({4, 5}), b = npy_i8({6});
  const auto m = npy::npz_members(zip_of({stored("a.npy", a), deflated("b.npy", b)}, true), "t.npz");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m.at("a"), a);
  EXPECT_EQ(m.at("b"), b);
  // ZIP64 announced by the end record, but the locator is missing.
  std::string z = zip_of({stored("a.npy", a)}, true);
  const size_t locator = z.size() - 22 - 20;
  z[locator] = 'X';
  EXPECT_NE(error_of(z).find("ZIP64 sizes announced but no ZIP64 end of central directory locator"), std::string::npos)
      << error_of(z);
}

TEST(Npz, NumpyStoredAndCompressedArchivesHoldTheSameArrays) {
  // np.savez writes ZIP64 extra fields in the local headers; np.savez_compressed deflates.
  const auto s = npy::npz_members(fixture("features_stored.npz"), "stored");
  const auto d = npy::npz_members(fixture("features_deflate.npz"), "deflate");
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s, d);
  const auto cams = npy::parse(s.at("cams"), "cams");
  EXPECT_EQ(cams.descr, "|u1");
  EXPECT_EQ(cams.i64, (std::vector<int64_t>{1, 2}));
}

TEST(Npz, RejectsBrokenArchivesNamingTheProblem) {
  const std::string a = npy_i8({1, 2, 3});
  EXPECT_NE(error_of("not a zip at all, just some text").find("t.npz: not a zip archive"), std::string::npos);
  EXPECT_NE(error_of("PK").find("not a zip archive"), std::string::npos);

  Member bad_crc = stored("a.npy", a);
  bad_crc.crc ^= 1;
  EXPECT_NE(error_of(zip_of({bad_crc})).find("member 'a.npy': CRC-32 mismatch"), std::string::npos);

  Member bzip2 = stored("a.npy", a);
  bzip2.method = 12;
  EXPECT_NE(error_of(zip_of({bzip2})).find("unsupported compression method 12 (expected 0 stored or 8 deflate"),
            std::string::npos);

  Member encrypted = stored("a.npy", a);
  encrypted.flags = 1;
  EXPECT_NE(error_of(zip_of({encrypted})).find("member 'a.npy' is encrypted"), std::string::npos);

  Member garbled = deflated("a.npy", a);
  garbled.data = std::string(garbled.data.size(), '\xff');
  EXPECT_NE(error_of(zip_of({garbled})).find("member 'a.npy': corrupt deflate data"), std::string::npos)
      << error_of(zip_of({garbled}));

  Member bomb = deflated("a.npy", a);
  bomb.usize = 4000000000u;
  EXPECT_NE(error_of(zip_of({bomb})).find("beyond deflate's ratio"), std::string::npos);

  Member liar = stored("a.npy", a);
  liar.usize += 1;
  EXPECT_NE(error_of(zip_of({liar})).find("stored member with compressed size"), std::string::npos);

  // Cut inside the central directory: the end record is gone.
  const std::string whole = zip_of({stored("a.npy", a)});
  EXPECT_NE(error_of(whole.substr(0, whole.size() - 30)).find("not a zip archive"), std::string::npos);
  // The central directory points past the end of the file.
  std::string moved = whole;
  moved[moved.size() - 3] = '\x7f';  // the high byte of the directory's offset
  EXPECT_NE(error_of(moved).find("truncated zip"), std::string::npos) << error_of(moved);

  EXPECT_NE(error_of(zip_of({stored("a.txt", a)})).find("member 'a.txt' is not an .npy file"), std::string::npos);
  EXPECT_NE(error_of(zip_of({stored("a.npy", a), stored("a.npy", a)})).find("array 'a' appears twice"),
            std::string::npos);
}

TEST(Npz, CorruptNumpyArchiveIsAClearError) {
  std::string z = fixture("features_deflate.npz");
  const size_t data = z.find("features.npy") + 12 + 20 + 40;  // inside the first member's deflate stream
  for (size_t i = data; i < data + 16; ++i) z[i] = static_cast<char>(~z[i]);
  const std::string msg = error_of(z);
  EXPECT_NE(msg.find("t.npz: member 'features.npy'"), std::string::npos) << msg;
}

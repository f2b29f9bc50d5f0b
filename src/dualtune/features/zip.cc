#include "dualtune/features/zip.h"

#include <zlib.h>

#include <cstdint>
#include <limits>

#include "dualtune/util/error.h"

namespace dualtune::zip {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50, kZip64LocatorSig = 0x07064b50;
constexpr size_t kLocalLen = 30, kCentralLen = 46, kEndLen = 22, kZip64EndLen = 56, kZip64LocatorLen = 20;
// deflate's best ratio is about 1032:1; a member claiming more is corrupt (or a bomb).
constexpr uint64_t kMaxDeflateRatio = 1032;

/// Little-endian reads with bounds checks against the whole archive.
class Reader {
 public:
  Reader(const std::string& b, const std::string& src) : b_(b), src_(src) {}
  uint64_t le(size_t at, int n) const {
    need(at, static_cast<uint64_t>(n), "field");
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b_[at + static_cast<size_t>(i)]);
    return v;
  }
  void need(uint64_t at, uint64_t len, const char* what) const {
    DT_CHECK(at <= b_.size() && len <= b_.size() - at, src_, ": truncated zip: ", what, " at offset ", at, " needs ",
             len, " bytes, the archive has ", b_.size());
  }
  const std::string& bytes() const { return b_; }

 private:
  const std::string& b_;
  const std::string& src_;
};

struct Entry {
  std::string name;
  uint16_t flags = 0, method = 0;
  uint32_t crc = 0;
  uint64_t csize = 0, usize = 0, offset = 0;
};

std::string inflate_raw(const std::string& in, uint64_t usize, const std::string& where) {
  std::string out(static_cast<size_t>(usize), '\0');
  z_stream z{};
  DT_CHECK(inflateInit2(&z, -MAX_WBITS) == Z_OK, where, ": zlib inflateInit2 failed");
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  // One extra byte of room: output beyond the declared size shows as avail_out == 0.
  std::string spare(1, '\0');
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int rc = inflate(&z, Z_FINISH);
  if (rc == Z_BUF_ERROR && z.avail_out == 0) {
    z.next_out = reinterpret_cast<Bytef*>(spare.data());
    z.avail_out = 1;
    rc = inflate(&z, Z_FINISH);
  }
  const uint64_t produced = z.total_out;
  inflateEnd(&z);
  DT_CHECK(rc == Z_STREAM_END, where, ": corrupt deflate data (",
           rc == Z_DATA_ERROR ? "invalid data" : rc == Z_BUF_ERROR ? "truncated" : "zlib error " + std::to_string(rc),
           " after ", produced, " of ", usize, " bytes)");
  DT_CHECK(produced == usize, where, ": inflated to ", produced, " bytes, the directory declares ", usize);
  return out;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> read_members(const std::string& bytes, const std::string& source) {
  const Reader r(bytes, source);
  const std::string& src = source;
  DT_CHECK(bytes.size() >= kEndLen, src, ": not a zip archive (", bytes.size(), " bytes, no end of central directory)");
  // The end record sits at the end, followed by a comment of at most 65535 bytes.
  size_t end = std::string::npos;
  const size_t lowest = bytes.size() >= kEndLen + 0xffff ? bytes.size() - kEndLen - 0xffff : 0;
  for (size_t at = bytes.size() - kEndLen + 1; at-- > lowest;) {
    if (r.le(at, 4) == kEndSig && at + kEndLen + r.le(at + 20, 2) == bytes.size()) {
      end = at;
      break;
    }
  }
  DT_CHECK(end != std::string::npos, src, ": not a zip archive (no end of central directory record)");
  uint64_t count = r.le(end + 10, 2), cd_size = r.le(end + 12, 4), cd_offset = r.le(end + 16, 4);
  DT_CHECK(r.le(end + 4, 2) == 0 && r.le(end + 6, 2) == 0, src, ": multi-disk zip archives are not supported");
  if (count == 0xffff || cd_size == 0xffffffff || cd_offset == 0xffffffff) {
    DT_CHECK(end >= kZip64LocatorLen && r.le(end - kZip64LocatorLen, 4) == kZip64LocatorSig, src,
             ": ZIP64 sizes announced but no ZIP64 end of central directory locator");
    const uint64_t z64 = r.le(end - kZip64LocatorLen + 8, 8);
    r.need(z64, kZip64EndLen, "ZIP64 end of central directory");
    DT_CHECK(r.le(static_cast<size_t>(z64), 4) == kZip64EndSig, src, ": bad ZIP64 end of central directory signature");
    count = r.le(static_cast<size_t>(z64) + 32, 8);
    cd_size = r.le(static_cast<size_t>(z64) + 40, 8);
    cd_offset = r.le(static_cast<size_t>(z64) + 48, 8);
  }
  r.need(cd_offset, cd_size, "central directory");
  DT_CHECK(count <= cd_size / kCentralLen, src, ": central directory of ", cd_size, " bytes cannot hold ", count,
           " entries");

  std::vector<Entry> entries;
  size_t at = static_cast<size_t>(cd_offset);
  for (uint64_t i = 0; i < count; ++i) {
    r.need(at, kCentralLen, "central directory entry");
    DT_CHECK(r.le(at, 4) == kCentralSig, src, ": bad central directory entry signature at offset ", at);
    Entry e;
    e.flags = static_cast<uint16_t>(r.le(at + 8, 2));
    e.method = static_cast<uint16_t>(r.le(at + 10, 2));
    e.crc = static_cast<uint32_t>(r.le(at + 16, 4));
    e.csize = r.le(at + 20, 4);
    e.usize = r.le(at + 24, 4);
    const size_t name_len = r.le(at + 28, 2), extra_len = r.le(at + 30, 2), comment_len = r.le(at + 32, 2);
    e.offset = r.le(at + 42, 4);
    r.need(at + kCentralLen, name_len + extra_len + comment_len, "central directory entry name");
    e.name = bytes.substr(at + kCentralLen, name_len);
    // ZIP64 extended information (id 1): 8-byte values for the fields saturated above, in this order.
    for (size_t x = at + kCentralLen + name_len, x_end = x + extra_len; x + 4 <= x_end;) {
      const uint64_t id = r.le(x, 2), len = r.le(x + 2, 2);
      DT_CHECK(x + 4 + len <= x_end, src, ": ", e.name, ": extra field overruns its entry");
      if (id == 1) {
        size_t p = x + 4;
        for (uint64_t* field : {&e.usize, &e.csize, &e.offset}) {
          if (*field != 0xffffffff) continue;
          DT_CHECK(p + 8 <= x + 4 + len, src, ": ", e.name, ": ZIP64 extra field too short");
          *field = r.le(p, 8);
          p += 8;
        }
      }
      x += 4 + len;
    }
    entries.push_back(e);
    at += kCentralLen + name_len + extra_len + comment_len;
  }

  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& e : entries) {
    const std::string where = src + ": member '" + e.name + "'";
    DT_CHECK(!(e.flags & 1), where, " is encrypted");
    DT_CHECK(e.method == 0 || e.method == 8, where, ": unsupported compression method ", e.method,
             " (expected 0 stored or 8 deflate, as numpy writes)");
    r.need(e.offset, kLocalLen, "local header");
    DT_CHECK(r.le(static_cast<size_t>(e.offset), 4) == kLocalSig, where, ": bad local header signature at offset ",
             e.offset);
    const uint64_t data_at = e.offset + kLocalLen + r.le(static_cast<size_t>(e.offset) + 26, 2) +
                             r.le(static_cast<size_t>(e.offset) + 28, 2);
    r.need(data_at, e.csize, "member data");
    const std::string data = bytes.substr(static_cast<size_t>(data_at), static_cast<size_t>(e.csize));
    std::string content;
    if (e.method == 0) {
      DT_CHECK(e.csize == e.usize, where, ": stored member with compressed size ", e.csize, " != size ", e.usize);
      content = data;
    } else {
      DT_CHECK(e.usize <= e.csize * kMaxDeflateRatio + 64, where, ": declares ", e.usize, " bytes from ", e.csize,
               " compressed, beyond deflate's ratio");
      DT_CHECK(e.csize <= std::numeric_limits<uInt>::max() && e.usize <= std::numeric_limits<uInt>::max(), where,
               ": members of 4 GiB or more are not supported");
      content = inflate_raw(data, e.usize, where);
    }
    const auto crc = static_cast<uint32_t>(
        crc32_z(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(content.data()), content.size()));
    DT_CHECK(crc == e.crc, where, ": CRC-32 mismatch (stored ", e.crc, ", computed ", crc, "): corrupt archive");
    out.emplace_back(e.name, std::move(content));
  }
  return out;
}

}  // namespace dualtune::zip

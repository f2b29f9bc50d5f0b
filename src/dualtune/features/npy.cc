#include "dualtune/features/npy.h"

#include <cctype>
#include <cstring>
#include <limits>

#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"

namespace dualtune::npy {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;

static_assert(sizeof(float) == 4, "npy <f4 needs 32-bit float");

bool host_is_little_endian() {
  const uint16_t one = 1;
  unsigned char b;
  std::memcpy(&b, &one, 1);
  return b == 1;
}

std::string shape_repr(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

int64_t checked_numel(const std::vector<int64_t>& shape, const std::string& source) {
  int64_t n = 1;
  for (int64_t v : shape) {
    DT_CHECK(v >= 0, source, ": expected non-negative shape entries, found ", shape_repr(shape));
    DT_CHECK(v == 0 || n <= std::numeric_limits<int64_t>::max() / 8 / v, source,
             ": shape ", shape_repr(shape), " overflows");
    n *= v;
  }
  return n;
}

/// The header npy 1.0 writes: dict, spaces, '\n', so that 10 + HLEN % 64 == 0.
std::string make_header(const std::string& descr, const std::vector<int64_t>& shape) {
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape_repr(shape) + ", }";
  size_t total = kMagicLen + 2 + 2 + dict.size() + 1;  // +1 for '\n'
  size_t padded = (total + 63) / 64 * 64;
  dict.append(padded - total, ' ');
  dict += '\n';
  DT_CHECK(dict.size() <= 65535, "npy header too long for version 1.0 (", dict.size(), " bytes)");
  std::string out(kMagic, kMagicLen);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(dict.size() & 0xff);
  out += static_cast<char>((dict.size() >> 8) & 0xff);
  return out + dict;
}

void save_raw(const std::string& path, const char* descr, const void* data, size_t elem_size,
              const std::vector<int64_t>& shape) {
  DT_CHECK(host_is_little_endian(), "npy ", path, ": writing needs a little-endian host");
  const int64_t n = checked_numel(shape, "npy " + path);
  const std::string header = make_header(descr, shape);
  write_file_atomic(path, [&](std::ostream& os) {
    os.write(header.data(), static_cast<std::streamsize>(header.size()));
    if (n > 0) os.write(static_cast<const char*>(data), static_cast<std::streamsize>(n * elem_size));
  });
}

/// Minimal parser for the Python dict literal of an npy header.
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& source) : s_(text), src_(source) {}

  void parse(std::string& descr, bool& fortran, std::vector<int64_t>& shape) {
    bool have_descr = false, have_fortran = false, have_shape = false;
    skip_ws();
    expect('{');
    while (true) {
      skip_ws();
      if (peek() == '}') {
        ++i_;
        break;
      }
      std::string key = quoted();
      skip_ws();
      expect(':');
      skip_ws();
      if (key == "descr") {
        descr = quoted();
        have_descr = true;
      } else if (key == "fortran_order") {
        fortran = boolean();
        have_fortran = true;
      } else if (key == "shape") {
        shape = tuple();
        have_shape = true;
      } else {
        fail("expected key 'descr', 'fortran_order' or 'shape', found '" + key + "'");
      }
      skip_ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      skip_ws();
      if (peek() == '}') continue;
      fail(std::string("expected ',' or '}', found ") + found());
    }
    skip_ws();
    DT_CHECK(i_ == s_.size(), src_, ": npy header has trailing characters after the dict");
    DT_CHECK(have_descr && have_fortran && have_shape, src_,
             ": npy header must have keys 'descr', 'fortran_order' and 'shape'; found ",
             have_descr ? "" : "no descr ", have_fortran ? "" : "no fortran_order ", have_shape ? "" : "no shape");
  }

 private:
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  std::string found() const { return i_ < s_.size() ? std::string("'") + s_[i_] + "'" : "end of header"; }
  [[noreturn]] void fail(const std::string& what) const {
    DT_THROW(src_, ": malformed npy header at offset ", i_, ": ", what);
  }
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "', found " + found());
    ++i_;
  }
  std::string quoted() {
    char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted string, found " + found());
    ++i_;
    size_t start = i_;
    while (i_ < s_.size() && s_[i_] != q) ++i_;
    if (i_ >= s_.size()) fail("unterminated string");
    std::string out = s_.substr(start, i_ - start);
    ++i_;
    return out;
  }
  bool boolean() {
    if (s_.compare(i_, 4, "True") == 0) {
      i_ += 4;
      return true;
    }
    if (s_.compare(i_, 5, "False") == 0) {
      i_ += 5;
      return false;
    }
    fail("expected True or False, found " + found());
  }
  std::vector<int64_t> tuple() {
    std::vector<int64_t> out;
    expect('(');
    while (true) {
      skip_ws();
      if (peek() == ')') {
        ++i_;
        return out;
      }
      if (!std::isdigit(static_cast<unsigned char>(peek()))) fail("expected a dimension, found " + found());
      int64_t v = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        int digit = peek() - '0';
        if (v > (std::numeric_limits<int64_t>::max() - digit) / 10) fail("dimension overflows int64");
        v = v * 10 + digit;
        ++i_;
      }
      out.push_back(v);
      skip_ws();
      if (peek() == ',') {
        ++i_;
      } else if (peek() != ')') {
        fail("expected ',' or ')' in shape, found " + found());
      }
    }
  }

  const std::string& s_;
  const std::string& src_;
  size_t i_ = 0;
};

}  // namespace

int64_t Array::numel() const {
  int64_t n = 1;
  for (int64_t v : shape) n *= v;
  return n;
}

void save_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  save_raw(path, "<f4", data, sizeof(float), shape);
}

void save_i64(const std::string& path, const int64_t* data, const std::vector<int64_t>& shape) {
  save_raw(path, "<i8", data, sizeof(int64_t), shape);
}

Array parse(const std::string& bytes, const std::string& source) {
  const std::string src = "npy " + source;
  DT_CHECK(host_is_little_endian(), src, ": reading needs a little-endian host");
  DT_CHECK(bytes.size() >= 10, src, ": truncated: expected at least 10 bytes of preamble, found ", bytes.size());
  DT_CHECK(bytes.compare(0, kMagicLen, kMagic, kMagicLen) == 0, src,
           ": bad magic: expected \"\\x93NUMPY\" (not a .npy file)");
  const auto major = static_cast<unsigned char>(bytes[6]);
  const auto minor = static_cast<unsigned char>(bytes[7]);
  DT_CHECK((major == 1 || major == 2) && minor == 0, src, ": unsupported format version: expected 1.0 or 2.0, found ",
           int(major), ".", int(minor));
  size_t hlen, data_start;
  if (major == 1) {
    hlen = static_cast<unsigned char>(bytes[8]) | (static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8);
    data_start = 10 + hlen;
  } else {
    DT_CHECK(bytes.size() >= 12, src, ": truncated: expected 12 bytes of preamble, found ", bytes.size());
    hlen = 0;
    for (int i = 3; i >= 0; --i) hlen = (hlen << 8) | static_cast<unsigned char>(bytes[8 + i]);
    data_start = 12 + hlen;
  }
  DT_CHECK(bytes.size() >= data_start, src, ": truncated header: expected ", data_start, " bytes, found ",
           bytes.size());
  const std::string header = bytes.substr(data_start - hlen, hlen);
  DT_CHECK(!header.empty() && header.back() == '\n', src, ": malformed npy header: expected it to end in '\\n'");

  Array a;
  bool fortran = false;
  HeaderParser(header, src).parse(a.descr, fortran, a.shape);
  DT_CHECK(!fortran, src, ": unsupported fortran_order: expected False (C order), found True");
  size_t elem;
  if (a.descr == "<f4") {
    elem = 4;
  } else if (a.descr == "<i8") {
    elem = 8;
  } else {
    DT_THROW(src, ": unsupported dtype: expected '<f4' (float32) or '<i8' (int64), found '", a.descr, "'");
  }
  const int64_t n = checked_numel(a.shape, src);
  const size_t want = static_cast<size_t>(n) * elem;
  const size_t have = bytes.size() - data_start;
  DT_CHECK(have >= want, src, ": truncated data: shape ", shape_repr(a.shape), " needs ", want, " bytes, found ",
           have);
  DT_CHECK(have == want, src, ": ", have - want, " trailing bytes after ", want, " bytes of data for shape ",
           shape_repr(a.shape));
  if (elem == 4) {
    a.f32.resize(static_cast<size_t>(n));
    if (n) std::memcpy(a.f32.data(), bytes.data() + data_start, want);
  } else {
    a.i64.resize(static_cast<size_t>(n));
    if (n) std::memcpy(a.i64.data(), bytes.data() + data_start, want);
  }
  return a;
}

Array load(const std::string& path) { return parse(read_file(path), path); }

}  // namespace dualtune::npy

#include "dualtune/features/npy.h"

#include <cctype>
#include <cmath>
#include <cstring>
#include <iostream>
#include <limits>
#include <mutex>
#include <set>

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

/// The dtypes read (numpy's default little-endian descrs) and what they become.
enum class Code { f4, f8, f2, i8, i4, u1, u2, u4, u8 };
struct Dtype {
  const char* descr;
  const char* name;
  size_t size;
  Code code;
};
constexpr Dtype kDtypes[] = {{"<f4", "float32", 4, Code::f4}, {"<f8", "float64", 8, Code::f8},
                             {"<f2", "float16", 2, Code::f2}, {"<i8", "int64", 8, Code::i8},
                             {"<i4", "int32", 4, Code::i4},   {"|u1", "uint8", 1, Code::u1},
                             {"<u2", "uint16", 2, Code::u2},  {"<u4", "uint32", 4, Code::u4},
                             {"<u8", "uint64", 8, Code::u8}};

const Dtype* find_dtype(const std::string& descr) {
  for (const auto& t : kDtypes)
    if (descr == t.descr) return &t;
  return nullptr;
}

std::string accepted_dtypes() {
  return "float32 ('<f4'), float64 ('<f8'), float16 ('<f2') for features; int64 ('<i8'), int32 ('<i4'), "
         "uint8 ('|u1'), uint16 ('<u2'), uint32 ('<u4'), uint64 ('<u8') for labels";
}

/// IEEE 754 binary16 bits -> float (exact: every half is a float).
float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const int exp = (h >> 10) & 0x1f;
  const uint32_t mant = h & 0x3ff;
  float v;
  if (exp == 0) {
    v = std::ldexp(static_cast<float>(mant), -24);  // zero or subnormal: mant · 2^-24
  } else if (exp == 31) {
    v = mant ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else {
    v = std::ldexp(static_cast<float>(mant | 0x400), exp - 25);  // (1024 + mant) · 2^(exp-15-10)
  }
  return sign ? -v : v;
}

template <class T>
T read_le(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

/// Element i of `raw` (dtype t) into a.f32 / a.i64 at position `to`.
void convert_element(const Dtype& t, const char* raw, size_t to, Array& a, const std::string& src, size_t i) {
  switch (t.code) {
    case Code::f4: a.f32[to] = read_le<float>(raw); break;
    case Code::f8: {
      const double v = read_le<double>(raw);
      const float f = static_cast<float>(v);
      DT_CHECK(!std::isfinite(v) || std::isfinite(f), src, ": element ", i, " = ", v,
               " is outside the float32 range (float64 -> float32)");
      a.f32[to] = f;
      break;
    }
    case Code::f2: a.f32[to] = half_to_float(read_le<uint16_t>(raw)); break;
    case Code::i8: a.i64[to] = read_le<int64_t>(raw); break;
    case Code::i4: a.i64[to] = read_le<int32_t>(raw); break;
    case Code::u1: a.i64[to] = static_cast<unsigned char>(*raw); break;
    case Code::u2: a.i64[to] = read_le<uint16_t>(raw); break;
    case Code::u4: a.i64[to] = read_le<uint32_t>(raw); break;
    case Code::u8: {
      const uint64_t v = read_le<uint64_t>(raw);
      DT_CHECK(v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), src, ": element ", i, " = ", v,
               " does not fit int64 (uint64 -> int64)");
      a.i64[to] = static_cast<int64_t>(v);
      break;
    }
  }
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
  DT_CHECK((major >= 1 && major <= 3) && minor == 0, src, ": unsupported format version: expected 1.0, 2.0 or 3.0, found ",
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
  const Dtype* t = find_dtype(a.descr);
  DT_CHECK(t, src, ": unsupported dtype: found '", a.descr, "'; accepted: ", accepted_dtypes());
  const int64_t n = checked_numel(a.shape, src);
  const size_t want = static_cast<size_t>(n) * t->size;
  const size_t have = bytes.size() - data_start;
  DT_CHECK(have >= want, src, ": truncated data: shape ", shape_repr(a.shape), " needs ", want, " bytes, found ",
           have);
  DT_CHECK(have == want, src, ": ", have - want, " trailing bytes after ", want, " bytes of data for shape ",
           shape_repr(a.shape));
  const bool floating = a.is_float();
  if (t->code != Code::f4 && t->code != Code::i8)
    a.conversions.push_back(std::string(t->name) + (floating ? " -> float32" : " -> int64"));
  const bool transpose = fortran && a.shape.size() > 1;  // 0-D and 1-D: the same bytes either way
  if (transpose) a.conversions.push_back("Fortran order -> C order");
  if (floating) {
    a.f32.resize(static_cast<size_t>(n));
  } else {
    a.i64.resize(static_cast<size_t>(n));
  }
  if (a.conversions.empty()) {  // float32 / int64 in C order: the bytes as they are
    if (n) std::memcpy(floating ? static_cast<void*>(a.f32.data()) : a.i64.data(), bytes.data() + data_start, want);
    return a;
  }
  // Element i of the file sits at C-order position `to`: the same unless Fortran order,
  // where the file's index runs over the first axis fastest.
  std::vector<int64_t> idx(a.shape.size(), 0);
  for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
    size_t to = i;
    if (transpose) {
      to = 0;
      for (size_t k = 0; k < a.shape.size(); ++k) to = to * static_cast<size_t>(a.shape[k]) + static_cast<size_t>(idx[k]);
      for (size_t k = 0; k < a.shape.size() && ++idx[k] == a.shape[k]; ++k) idx[k] = 0;
    }
    convert_element(*t, bytes.data() + data_start + i * t->size, to, a, src, i);
  }
  return a;
}

std::string dtype_name(const std::string& descr) {
  const Dtype* t = find_dtype(descr);
  return t ? std::string(t->name) + " ('" + descr + "')" : "'" + descr + "'";
}

void note_once(const std::string& source, const std::string& what) {
  static std::mutex mu;
  static std::set<std::string> said;
  const std::string line = "dualtune: note: " + source + ": " + what;
  const std::lock_guard<std::mutex> lock(mu);
  if (said.insert(line).second) std::cerr << line << std::endl;
}

void note_conversions(const Array& a, const std::string& source) {
  for (const auto& c : a.conversions) note_once(source, c);
}

Array load(const std::string& path) {
  Array a = parse(read_file(path), path);
  note_conversions(a, path);
  return a;
}

}  // namespace dualtune::npy

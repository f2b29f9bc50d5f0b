#pragma once
// NumPy .npy files (numpy.lib.format), versions 1.0, 2.0 and 3.0:
//   "\x93NUMPY" major minor, header length HLEN (uint16 LE in 1.0, uint32 LE after),
//   then a Python dict "{'descr': '<f4', 'fortran_order': False, 'shape': (n, d), }"
//   padded with spaces and ended by '\n', then the raw data.
// Read as numpy writes by default (little-endian host):
//   floats    '<f4' float32, '<f8' float64, '<f2' float16       -> float32 (Array::f32)
//   integers  '<i8' int64, '<i4' int32, '|u1' '<u2' '<u4' '<u8'  -> int64   (Array::i64)
//   fortran_order True (column-major)                           -> C order
// Every conversion is listed in Array::conversions (load() states them on stderr);
// any other dtype is an error naming the dtype found and those accepted. Written
// files are always float32 / int64, C order, version 1.0.
#include <cstdint>
#include <string>
#include <vector>

namespace dualtune::npy {

struct Array {
  std::string descr;                     ///< dtype as stored in the file, e.g. "<f8"
  std::vector<int64_t> shape;            ///< () for scalars
  std::vector<float> f32;                ///< float dtypes: the values as float32, C order
  std::vector<int64_t> i64;              ///< integer dtypes: the values as int64, C order
  std::vector<std::string> conversions;  ///< e.g. "float64 -> float32"; empty for float32/int64 C order
  bool is_float() const { return descr.size() == 3 && descr[1] == 'f'; }
  bool is_integer() const { return descr.size() == 3 && (descr[1] == 'i' || descr[1] == 'u'); }
  int64_t numel() const;
};

/// "float64 ('<f8')" for a supported descr, else the descr quoted.
std::string dtype_name(const std::string& descr);

/// Writes atomically. data has product(shape) elements.
void save_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape);
void save_i64(const std::string& path, const int64_t* data, const std::vector<int64_t>& shape);

/// Parses a whole file and states its conversions on stderr (note_conversions); throws
/// dualtune::Error naming path and what was wrong (bad magic, unsupported version or
/// dtype, malformed header, truncated data, shape overflow, trailing bytes, a float64
/// value out of float32 range, a uint64 value above int64's).
Array load(const std::string& path);
/// Same on an in-memory buffer, silently (used by the fuzzer and by npz); source names
/// it in errors.
Array parse(const std::string& bytes, const std::string& source);

/// Writes "dualtune: note: <source>: <what>" to stderr, each distinct line once per process.
void note_once(const std::string& source, const std::string& what);
/// note_once for each conversion of a.
void note_conversions(const Array& a, const std::string& source);

}  // namespace dualtune::npy

#pragma once
// NumPy .npy files, format version 1.0 (numpy.lib.format):
//   "\x93NUMPY" 0x01 0x00, uint16 LE header length HLEN, then an ASCII Python dict
//   "{'descr': '<f4', 'fortran_order': False, 'shape': (n, d), }" padded with spaces
//   and ended by '\n' so that 10 + HLEN is a multiple of 64, then the raw C-order data.
// Supported dtypes: <f4 (float32), <i8 (int64). Anything else is a clear error.
#include <cstdint>
#include <string>
#include <vector>

namespace dualtune::npy {

struct Array {
  std::string descr;            ///< "<f4" or "<i8"
  std::vector<int64_t> shape;   ///< () for scalars
  std::vector<float> f32;       ///< filled when descr == "<f4"
  std::vector<int64_t> i64;     ///< filled when descr == "<i8"
  int64_t numel() const;
};

/// Writes atomically. data has product(shape) elements.
void save_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape);
void save_i64(const std::string& path, const int64_t* data, const std::vector<int64_t>& shape);

/// Parses a whole file; throws dualtune::Error naming path and what was wrong (bad magic,
/// unsupported version/dtype/fortran order, header malformed, truncated data, shape
/// overflow, trailing bytes).
Array load(const std::string& path);
/// Same on an in-memory buffer (used by the fuzzer); source names it in errors.
Array parse(const std::string& bytes, const std::string& source);

}  // namespace dualtune::npy

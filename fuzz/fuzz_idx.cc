// libFuzzer target: data::parse_idx (raw and gzipped IDX) on arbitrary bytes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "dualtune/data/idx.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  dualtune::fuzz::expect_ok_or_error("parse_idx", [&] {
    const auto a = dualtune::data::parse_idx(bytes, "<fuzz>");
    // The invariant every reader relies on: data holds exactly prod(dims) bytes.
    // (overflow-checked: a product that wraps around must not pass for a small one)
    size_t n = 1;
    for (auto d : a.dims)
      if (d < 0 || __builtin_mul_overflow(n, static_cast<size_t>(d), &n)) __builtin_trap();
    if (n != a.data.size()) __builtin_trap();
  });
  // The dataset readers ask for a fixed rank; exercise that path as well.
  dualtune::fuzz::expect_ok_or_error("parse_idx(ndim=3)", [&] { dualtune::data::parse_idx(bytes, "<fuzz>", 3); });
  return 0;
}

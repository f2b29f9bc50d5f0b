// libFuzzer target: npy::parse on arbitrary bytes (every accepted dtype, its conversion
// to float32 / int64, Fortran-order transposition).
#include <cstddef>
#include <cstdint>
#include <string>

#include "dualtune/features/npy.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  dualtune::fuzz::expect_ok_or_error("npy::parse", [&] {
    const auto a = dualtune::npy::parse(bytes, "<fuzz>");
    // Invariant: exactly one buffer holds numel() elements, the one of the dtype's kind.
    const size_t n = static_cast<size_t>(a.numel());
    if (a.is_float() == a.is_integer()) __builtin_trap();
    if (a.is_float() && (a.f32.size() != n || !a.i64.empty())) __builtin_trap();
    if (a.is_integer() && (a.i64.size() != n || !a.f32.empty())) __builtin_trap();
  });
  return 0;
}

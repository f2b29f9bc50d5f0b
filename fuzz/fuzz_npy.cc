// libFuzzer target: npy::parse on arbitrary bytes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "dualtune/features/npy.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  dualtune::fuzz::expect_ok_or_error("npy::parse", [&] {
    const auto a = dualtune::npy::parse(bytes, "<fuzz>");
    // Invariant: the filled buffer holds numel() elements.
    const size_t n = static_cast<size_t>(a.numel());
    if (a.descr == "<f4" && a.f32.size() != n) __builtin_trap();
    if (a.descr == "<i8" && a.i64.size() != n) __builtin_trap();
  });
  return 0;
}

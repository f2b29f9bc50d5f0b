// libFuzzer target: data::parse_market_name on arbitrary file names.
#include <cstddef>
#include <cstdint>
#include <string>

#include "dualtune/data/market1501.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string name(reinterpret_cast<const char*>(data), size);
  dualtune::fuzz::expect_ok_or_error("parse_market_name", [&] {
    const auto m = dualtune::data::parse_market_name(name);
    if (m.pid < -1 || m.cam < 0 || m.seq < 0 || m.frame < 0 || m.index < 0) __builtin_trap();
  });
  return 0;
}

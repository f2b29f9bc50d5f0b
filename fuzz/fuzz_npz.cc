// libFuzzer target: npy::npz_members (ZIP reader: end record, ZIP64, central directory,
// local headers, inflate, CRC) on arbitrary bytes, then npy::parse of every member.
#include <cstddef>
#include <cstdint>
#include <string>

#include "dualtune/features/npy.h"
#include "dualtune/features/npz.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  dualtune::fuzz::expect_ok_or_error("npz_members", [&] {
    for (const auto& member : dualtune::npy::npz_members(bytes, "<fuzz>")) {  // (key, bytes)
      dualtune::fuzz::expect_ok_or_error("npy::parse (npz member)", [&] {
        const auto a = dualtune::npy::parse(member.second, member.first);
        if (a.f32.size() + a.i64.size() != static_cast<size_t>(a.numel())) __builtin_trap();
      });
    }
  });
  return 0;
}

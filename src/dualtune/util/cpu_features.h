#pragma once
// What the CPU can do that changes which arithmetic is fast: bf16 instructions
// (avx512_bf16, or AMX's amx_bf16), read from the "flags" line of /proc/cpuinfo.
// DUALTUNE_CPU_BF16=1 / =0 overrides the detection, so both branches of a choice made
// from it (optim.precision: auto) can be tested on any machine.
#include <string>

namespace dualtune {

struct CpuBf16 {
  bool fast = false;   ///< the CPU has avx512_bf16 or amx_bf16 (or the override says so)
  std::string source;  ///< "avx512_bf16", "amx_bf16", "none", or "DUALTUNE_CPU_BF16=1/0"
};

/// The bf16 support of this CPU (cached after the first call, except the override).
CpuBf16 cpu_bf16();

/// The bf16 flags named in one /proc/cpuinfo "flags" line: "avx512_bf16", "amx_bf16",
/// both comma-separated in that order, or "" (exposed for tests).
std::string bf16_flags(const std::string& flags_line);

}  // namespace dualtune

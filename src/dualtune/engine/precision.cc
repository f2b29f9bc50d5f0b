#include "dualtune/engine/precision.h"

#include "dualtune/util/cpu_features.h"
#include "dualtune/util/error.h"

namespace dualtune::engine {

ResolvedPrecision resolve_precision(const std::string& requested) {
  DT_CHECK(requested == "fp32" || requested == "bf16" || requested == "auto",
           "optim.precision: expected fp32, bf16 or auto, found '", requested, "'");
  if (requested != "auto") return {requested, requested + " as configured"};
  const CpuBf16 cpu = cpu_bf16();
  if (cpu.fast) return {"bf16", "auto: the CPU has bf16 instructions (" + cpu.source + ")"};
  const std::string found = cpu.source == "none" ? "neither avx512_bf16 nor amx_bf16 in /proc/cpuinfo" : cpu.source;
  return {"fp32", "auto: no bf16 instructions (" + found +
                      "); there bf16 convolutions run outside oneDNN, an order of magnitude slower"};
}

}  // namespace dualtune::engine

#include "dualtune/engine/precision.h"

#include <ATen/autocast_mode.h>

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

ForwardPrecision::ForwardPrecision(const std::string& precision) {
  DT_CHECK(precision == "fp32" || precision == "bf16", "optim.precision: expected fp32 or bf16, found '", precision,
           "'");
  if (precision != "bf16") return;
  active_ = true;
  was_enabled_ = at::autocast::is_cpu_enabled();
  at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  at::autocast::set_cpu_enabled(true);
  at::autocast::increment_nesting();
}

ForwardPrecision::~ForwardPrecision() {
  if (!active_) return;
  // As Python's autocast.__exit__: the bf16 copies of the weights cached during this
  // forward are dropped when the outermost scope ends (the weights change every step).
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_cpu_enabled(was_enabled_);
}

}  // namespace dualtune::engine

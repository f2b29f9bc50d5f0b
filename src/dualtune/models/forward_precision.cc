#include "dualtune/models/forward_precision.h"

#include <ATen/autocast_mode.h>

#include "dualtune/util/error.h"

namespace dualtune::models {

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

}  // namespace dualtune::models

#pragma once
// optim.precision: the arithmetic of the model's forward pass in training.
//   fp32  float32 throughout (the default)
//   bf16  libtorch's CPU autocast to bfloat16 (at::autocast, what
//         torch.autocast('cpu', dtype=torch.bfloat16) does in Python): convolutions and
//         matrix products run in bf16, with float32 weights, optimizer and losses (the
//         embedding is cast back to float32 before any loss). Faster than fp32 only on
//         CPUs with bf16 instructions (avx512_bf16, AMX); without them libtorch 1.13 runs
//         bf16 convolutions outside oneDNN, an order of magnitude slower than fp32
//         (docs/PERFORMANCE.md, measured on an AVX2-only Zen 3).
//   auto  bf16 where the CPU has bf16 instructions (util/cpu_features.h), else fp32;
//         the run's meta.json records what ran and why.
#include <string>

#include "dualtune/models/forward_precision.h"

namespace dualtune::engine {

/// What a requested precision runs as on this machine.
struct ResolvedPrecision {
  std::string name;    ///< fp32 | bf16
  std::string reason;  ///< one line: why (asked for, or what auto found on the CPU)
};

/// fp32 and bf16 run as asked; auto runs bf16 when cpu_bf16().fast, else fp32. Throws
/// dualtune::Error on any other value.
ResolvedPrecision resolve_precision(const std::string& requested);

/// The forward pass's scope (models/forward_precision.h).
using models::ForwardPrecision;

}  // namespace dualtune::engine

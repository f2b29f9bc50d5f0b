#pragma once
// The arithmetic of a forward pass: fp32, or bf16 through libtorch's CPU autocast
// (at::autocast, what torch.autocast('cpu', dtype=torch.bfloat16) does in Python):
// convolutions and matrix products in bfloat16 with float32 weights. Which of the two a
// run uses is decided in engine/precision.h (optim.precision, auto).
#include <string>

namespace dualtune::models {

/// Scope of a forward pass: enables CPU autocast to bf16 on this thread when
/// precision == "bf16", restores the previous state on exit. `precision` is resolved
/// (fp32 or bf16, not auto).
class ForwardPrecision {
 public:
  explicit ForwardPrecision(const std::string& precision);
  ~ForwardPrecision();
  ForwardPrecision(const ForwardPrecision&) = delete;
  ForwardPrecision& operator=(const ForwardPrecision&) = delete;

 private:
  bool active_ = false;
  bool was_enabled_ = false;
};

}  // namespace dualtune::models

#pragma once
// Training-path replacements for libtorch op sequences that are slow on the CPU in the
// convnets' bf16 training step, each giving the same numbers as the libtorch ops it
// replaces bit for bit (forward values and gradients), so switching them on changes
// speed only:
//
//   max_pool2x2_relu(x)  = relu_(max_pool2d(x, 2))   2×2 windows, stride 2, no padding
//   mean_hw(x)           = x.mean({2, 3})             backward laid out like x
//
// max_pool2x2_relu, forward: per output element the FIRST maximum of its window in scan
// order (row by row, left to right) as libtorch 1.13's CPU kernel takes it (`v > max ||
// isnan(v)`, from −inf: so a NaN wins, the last NaN of the window if several), then
// relu (v < 0 → +0; −0 and NaN pass). It keeps one byte per output element: the window
// position of the maximum (0–3), or 4 when relu's output is ≤ 0 (relu's backward,
// threshold_backward, passes no gradient there). Backward: the window position of the
// byte receives 0 + g (what max_pool2d_with_indices_backward adds into its zero-filled
// gradient: −0 becomes +0), the other three +0; rows and columns of an odd-sized input
// that no window covers get +0. libtorch instead keeps int64 indices and the relu
// output, fills the whole input gradient with zeros, then scatters: ~4× the memory
// traffic. NaN: the same elements are NaN in the output and in the gradient; the NaN's
// bit pattern (payload) is kept here, where libtorch may canonicalise it (0xffff or
// 0x7fc0 in bf16, depending on the channel's place in its vector loop).
//
// mean_hw, backward: libtorch's mean backward expands the [N, C] gradient and divides it
// by H·W into a new tensor in NCHW order; with a channels-last input, relu's backward
// (threshold_backward) then reads two tensors of different layouts, ~25× slower than
// with one layout. Here the [N, C] gradient is divided first (the same elementwise
// division, grad / (H·W) in the gradient's dtype) and expanded as a view, which
// libtorch's next op reads in the layout of its other operand.
//
// Both apply only in the training path (grad mode on, an input that requires grad),
// max_pool2x2_relu only to float32 or bf16 inputs stored densely in the layout libtorch's
// pooling takes for them (suggest_memory_format: channels-last, or NCHW, which the
// convnets' first block has: a one-channel input and its convolution's weight count as
// NCHW); otherwise they run the libtorch ops themselves.
#include <torch/torch.h>

#include <string>

namespace dualtune::models {

torch::Tensor max_pool2x2_relu(const torch::Tensor& x);
torch::Tensor mean_hw(const torch::Tensor& x);

/// On by default. Off: both functions run the libtorch ops (for tests and benchmarks
/// that compare the two paths in one process). Process-wide.
void set_fused_ops(bool on);
bool fused_ops_enabled();

/// Which compiled kernels the fused pool runs: "avx512", "avx2", "base" (SSE2) or "best"
/// (the default: the best this CPU has), so that tests run all that the CPU can.
/// Returns the name of the kernels chosen; throws for one the CPU cannot run.
std::string set_fused_kernels(const std::string& isa);

}  // namespace dualtune::models

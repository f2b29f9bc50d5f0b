#pragma once
// glibc malloc tuning for training on the CPU. A training step allocates and frees the
// same large activation and gradient buffers (MiBs each) every step; with glibc's
// defaults they come back as fresh pages (munmap, or heap trimming) and every step pays
// page faults and zeroing: perf showed ~18 % of a training's samples in the kernel
// (docs/PERFORMANCE.md). Keeping freed memory in the process for reuse removes that.
//
// This is a shared library of its own (dualtune_malloc), linked with -z initfirst: its
// constructor must run before libtorch's static initialisers, or the settings have no
// measurable effect (measured: mallopt from main() gave nothing; applied first, 1.04-1.18x
// training throughput depending on the host, docs/PERFORMANCE.md). DUALTUNE_MALLOC=default
// in the environment keeps glibc's defaults.
namespace dualtune {

/// True when the settings were applied at load time (glibc, DUALTUNE_MALLOC unset):
/// mmap threshold 32 MiB (glibc's maximum), heap trimming threshold 1 GiB.
bool malloc_tuning_active();

}  // namespace dualtune

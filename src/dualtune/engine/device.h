#pragma once
// `device:` — where the model, its batches and every loss input live.
//   cpu   the default of a CPU-only libtorch (and the only device tested in this repository)
//   cuda  the first CUDA GPU; needs a libtorch built with CUDA (configure with
//         -DTorch_DIR=<CUDA libtorch>/share/cmake/Torch) and a visible GPU, else an error
//         before any training step
//   auto  cuda when torch::cuda::is_available(), else cpu
// Data is decoded and augmented on the CPU (data/loader.h); each batch is copied to the
// device once, and whatever is written (features, prototypes, checkpoints) comes back to
// the CPU or is loaded onto the reader's device (engine/checkpoint.h).
#include <c10/core/Device.h>

#include <string>

namespace dualtune::engine {

struct ResolvedDevice {
  c10::Device device{c10::DeviceType::CPU};
  std::string name;    ///< cpu | cuda (recorded in meta.json)
  std::string reason;  ///< one line: asked for, or what auto found
};

/// Resolves `requested` (cpu | cuda | auto) given whether libtorch sees a CUDA device.
/// Throws dualtune::Error for cuda without one (naming the fix) and for any other value.
ResolvedDevice resolve_device(const std::string& requested, bool cuda_available);
/// resolve_device(requested, torch::cuda::is_available()).
ResolvedDevice resolve_device(const std::string& requested);

}  // namespace dualtune::engine

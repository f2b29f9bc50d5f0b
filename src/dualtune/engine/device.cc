#include "dualtune/engine/device.h"

#include <torch/cuda.h>

#include "dualtune/util/error.h"

namespace dualtune::engine {

ResolvedDevice resolve_device(const std::string& requested, bool cuda_available) {
  const ResolvedDevice cpu{c10::Device(c10::DeviceType::CPU), "cpu", ""};
  const ResolvedDevice cuda{c10::Device(c10::DeviceType::CUDA, 0), "cuda", ""};
  if (requested == "cpu") {
    ResolvedDevice d = cpu;
    d.reason = "device: cpu asked for";
    return d;
  }
  if (requested == "cuda") {
    DT_CHECK(cuda_available,
             "device: cuda asked for, but this libtorch has no CUDA (torch::cuda::is_available() is false); build "
             "against a CUDA libtorch with -DTorch_DIR=<libtorch>/share/cmake/Torch or set device: cpu");
    ResolvedDevice d = cuda;
    d.reason = "device: cuda asked for";
    return d;
  }
  DT_CHECK(requested == "auto", "device: expected one of {cpu, cuda, auto}, found '", requested, "'");
  ResolvedDevice d = cuda_available ? cuda : cpu;
  d.reason = cuda_available ? "auto: torch::cuda::is_available() is true" : "auto: no CUDA device visible to libtorch";
  return d;
}

ResolvedDevice resolve_device(const std::string& requested) {
  return resolve_device(requested, torch::cuda::is_available());
}

}  // namespace dualtune::engine

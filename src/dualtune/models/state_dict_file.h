#pragma once
// Named tensors in and out of the files PyTorch users have:
//   read: a TorchScript module (torch.jit.script(net).save(path): its parameters and
//         buffers, recursively, under their module paths, e.g. layer1.0.bn1.running_mean)
//         or a state dict torch.save wrote (torch_save_reader.h);
//   write: a state dict Python's torch.load(path) reads as a dict of name -> tensor
//          (torch::pickle_save: the same zip + pickle format torch.save writes).
#include <string>

#include "dualtune/models/torch_save_reader.h"

namespace dualtune::models {

/// The parameters and buffers of the TorchScript module or torch.save state dict at
/// `path`. Throws dualtune::Error naming the file when it is neither.
NamedTensors read_state_dict_file(const std::string& path);

/// "TorchScript module" or "torch.save state dict": what read_state_dict_file found.
std::string state_dict_file_kind(const std::string& path);

/// Writes tensors (made contiguous, on the CPU) to path atomically.
void write_state_dict_file(const std::string& path, const NamedTensors& tensors);

}  // namespace dualtune::models

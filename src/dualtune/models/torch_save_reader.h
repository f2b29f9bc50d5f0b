#pragma once
// Reads the tensors of a file Python's torch.save wrote (torch >= 1.6, the default zip
// format), without Python. libtorch's own torch::pickle_load cannot read the most common
// such file, torch.save(model.state_dict(), f): its unpickler turns every
// collections.OrderedDict into None (it expects them only as a tensor's empty backward
// hooks), and a state dict is an OrderedDict. So this is a small pickle machine of its own.
//
// The zip holds <archive>/data.pkl (a protocol-2 pickle) and <archive>/data/<key>, the raw
// little-endian bytes of each storage. In data.pkl a tensor is
//   torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, meta])
// where storage is a persistent id ('storage', torch.<Type>Storage, key, location, numel);
// torch._utils._rebuild_parameter(tensor, requires_grad, hooks) wraps nn.Parameters.
// Dicts (plain or OrderedDict) with string keys and tensor values are state dicts; a
// training checkpoint {"state_dict": {...}, "epoch": 3, ...} is searched one level down
// (keys state_dict, model_state_dict, model, net, module, in that order). Any other
// pickled class (torch.save(model) pickles the Python class itself) is reported by name.
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace dualtune::models {

/// (name, tensor) in the file's order.
using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

/// True when bytes are a zip archive (torch.save's format and TorchScript's).
bool is_zip(const std::string& bytes);

/// The state dict in `bytes` (the whole file `source`, named in errors). Throws
/// dualtune::Error for the legacy pre-1.6 format, a pickle this reader does not know,
/// a pickled Python object that is not a state dict, or a storage that is missing or too
/// short for its tensors.
NamedTensors read_torch_save(const std::string& bytes, const std::string& source);

}  // namespace dualtune::models

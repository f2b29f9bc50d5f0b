#include "dualtune/models/state_dict_file.h"

#include <torch/script.h>

#include <filesystem>
#include <fstream>

#include "dualtune/features/zip.h"
#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"

namespace dualtune::models {
namespace {

// TorchScript archives hold <archive>/constants.pkl and <archive>/code/...; torch.save's do not.
bool is_torchscript(const std::string& bytes, const std::string& path) {
  if (!is_zip(bytes)) return false;
  for (const auto& [name, data] : zip::read_members(bytes, path)) {
    const size_t slash = name.find('/');
    if (slash != std::string::npos &&
        (name.compare(slash, std::string::npos, "/constants.pkl") == 0 || name.compare(slash, 6, "/code/") == 0))
      return true;
  }
  return false;
}

}  // namespace

std::string state_dict_file_kind(const std::string& path) {
  return is_torchscript(read_file(path), path) ? "TorchScript module" : "torch.save state dict";
}

NamedTensors read_state_dict_file(const std::string& path) {
  DT_CHECK(std::filesystem::is_regular_file(path), path, " does not exist or is not a file");
  const std::string bytes = read_file(path);
  if (!is_torchscript(bytes, path)) return read_torch_save(bytes, path);
  torch::jit::Module module;
  try {
    module = torch::jit::load(path);
  } catch (const c10::Error& e) {
    DT_THROW("cannot load TorchScript module ", path, ": ", e.what_without_backtrace());
  }
  NamedTensors out;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) out.emplace_back(p.name, p.value.detach());
  for (const auto& b : module.named_buffers(/*recurse=*/true)) out.emplace_back(b.name, b.value.detach());
  return out;
}

void write_state_dict_file(const std::string& path, const NamedTensors& tensors) {
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& [name, t] : tensors) dict.insert(name, t.detach().to(torch::kCPU).contiguous());
  std::vector<char> bytes;
  try {
    bytes = torch::pickle_save(dict);
  } catch (const c10::Error& e) {
    DT_THROW("cannot serialise the state dict for ", path, ": ", e.what_without_backtrace());
  }
  write_file_atomic(path, [&](std::ostream& os) { os.write(bytes.data(), static_cast<std::streamsize>(bytes.size())); });
}

}  // namespace dualtune::models

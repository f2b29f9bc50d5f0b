#pragma once
// model.backbone: torchscript — the user's own network, exported from PyTorch, trained
// by dualtune like a built-in backbone.
//
// Accepted: a file written by torch.jit.script(net).save(path) whose forward(x) maps a
// B × C × H × W float batch to a B × F tensor (features), or to a B × F × h × w feature
// map, which EmbeddingModel average-pools to B × F like the built-in backbones' maps.
// Refused, before any training step, with what was expected and found:
//   - a file torch.jit.load cannot read (torch.save of a module or state dict);
//   - a forward that fails on a probe batch of 2 × C × H × W (data.channels/height/width),
//     returns no tensor (a tuple, a dict), or a tensor of another rank;
//   - no parameter with requires_grad (torch.jit.freeze inlines weights as constants);
//   - a traced module (torch.jit.trace) with BatchNorm or dropout: tracing records the
//     mode it ran in as a constant `training` argument of aten::batch_norm / dropout, so
//     BatchNorm statistics and dropout could not follow train() / eval(). Found by
//     reading the graphs: any aten op with a `training`/`train` argument that is a
//     constant. A scripted module reads self.training instead.
//
// The module's parameters and buffers are registered — the same tensors, not copies —
// in an nn::Module tree of the module's own hierarchy, so the optimizer updates what the
// module computes with, state dicts and checkpoints hold them by the module's names
// ("conv1.weight", "bn1.running_mean" under "backbone."), and train()/eval() reach the
// module. The forward runs in the TorchScript interpreter without graph optimisation
// (no profiling executor, fusion or autodiff subgraphs): each op runs and records its
// gradient as in PyTorch eager mode, and CPU autocast (bf16) applies per op. A safeguard,
// not a measured fix: on Debian's CPU libtorch 1.13 the optimised executor gave the same
// losses to the last bit (it fuses nothing on CPU), but the fusers of other builds
// (CUDA) would make a run's numerics depend on how often the module ran before, i.e. on
// where --resume restarted.
#include <memory>
#include <string>

#include "dualtune/models/backbone.h"

namespace torch::jit {
struct Module;
}

namespace dualtune::models {

/// What the probe batch looks like: data.channels, data.height, data.width.
struct ProbeShape {
  int64_t channels = 1, height = 28, width = 28;
};

/// Loads and checks the module at `path` (see above). Throws dualtune::Error naming the
/// file, the expectation and what was found.
std::shared_ptr<BackboneImpl> make_torchscript_backbone(const std::string& path, const ProbeShape& probe);

/// The TorchScript module of a torchscript backbone (sharing the trained tensors), or
/// nullptr for a built-in backbone: for writing the trained module back out.
torch::jit::Module* torchscript_module(BackboneImpl& backbone);

}  // namespace dualtune::models

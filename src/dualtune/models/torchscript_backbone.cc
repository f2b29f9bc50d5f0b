#include "dualtune/models/torchscript_backbone.h"

#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/python/update_graph_executor_opt.h>
#include <torch/script.h>

#include <functional>
#include <sstream>
#include <vector>

#include "dualtune/util/error.h"

namespace dualtune::models {
namespace {

const char* kExportHint = "export it with torch.jit.script(net).save(path)";

// The interpreter runs each op as PyTorch eager mode does (header: why). The setting is
// per thread; the previous value comes back on exit.
class EagerInterpreter {
 public:
  EagerInterpreter() : was_(torch::jit::getGraphExecutorOptimize()) { torch::jit::setGraphExecutorOptimize(false); }
  ~EagerInterpreter() { torch::jit::setGraphExecutorOptimize(was_); }
  EagerInterpreter(const EagerInterpreter&) = delete;
  EagerInterpreter& operator=(const EagerInterpreter&) = delete;

 private:
  bool was_;
};

std::string type_name(const torch::jit::Module& m) {
  const auto q = m.type()->name();
  return q ? q->name() : "?";
}

torch::jit::Module load_module(const std::string& path) {
  try {
    return torch::jit::load(path);
  } catch (const c10::Error& e) {
    DT_THROW("cannot load TorchScript backbone ", path, " (model.path): expected a TorchScript file (", kExportHint,
             "; a torch.save of a module or state dict is not one): ", e.what_without_backtrace());
  }
}

// Calls `visit` on every node of `block` and of the blocks nested in it (if / loop bodies).
void for_each_node(const torch::jit::Block* block, const std::function<void(const torch::jit::Node*)>& visit) {
  for (const auto* n : block->nodes()) {
    visit(n);
    for (const auto* b : n->blocks()) for_each_node(b, visit);
  }
}

// The first aten op, in any method of any submodule, whose `training` / `train` argument
// is a constant: what torch.jit.trace leaves of BatchNorm and dropout. "" when none.
std::string frozen_mode_op(const torch::jit::Module& module, int* count) {
  std::string first;
  *count = 0;
  for (const auto& sub : module.named_modules()) {
    for (const auto& method : sub.value.get_methods()) {
      for_each_node(method.graph()->block(), [&](const torch::jit::Node* n) {
        if (!n->kind().is_aten()) return;
        const auto* schema = n->maybeSchema();
        if (!schema) return;
        const auto& args = schema->arguments();
        for (size_t i = 0; i < args.size() && i < n->inputs().size(); ++i) {
          if (args[i].name() != "training" && args[i].name() != "train") continue;
          const auto v = torch::jit::toIValue(n->input(i));
          if (!v || !v->isBool()) continue;
          ++*count;
          if (first.empty()) {
            first = "submodule '" + (sub.name.empty() ? std::string("(top)") : sub.name) + "' (" +
                    type_name(sub.value) + ") calls " + n->kind().toQualString() + " with " + args[i].name() +
                    " fixed to " + (v->toBool() ? "true" : "false");
          }
        }
      });
    }
  }
  return first;
}

// Registers the parameters and buffers of `src` in `dst` (the same tensors), then one
// child module per submodule, recursively: dst's names are src's names.
void mirror(const torch::jit::Module& src, torch::nn::Module& dst) {
  for (const auto& p : src.named_parameters(false)) dst.register_parameter(p.name, p.value, p.value.requires_grad());
  for (const auto& b : src.named_buffers(false)) dst.register_buffer(b.name, b.value);
  for (const auto& c : src.named_children()) {
    auto child = std::make_shared<torch::nn::Module>(type_name(c.value));
    mirror(c.value, *child);
    dst.register_module(c.name, child);
  }
}

struct TorchScriptBackboneImpl : BackboneImpl {
  TorchScriptBackboneImpl(const std::string& path, const ProbeShape& probe) : path_(path), module_(load_module(path)) {
    DT_CHECK(module_.find_method("forward").has_value(), "TorchScript backbone ", path_,
             " has no forward method: expected forward(x) mapping B × C × H × W to B × F");
    check_trainable();
    check_mode_follows_training();
    mirror(module_, *this);
    probe_width(probe);
    module_.train(is_training());
  }

  torch::Tensor forward(torch::Tensor x) override {
    const auto in = x.sizes().vec();
    return checked(run(std::move(x), "on an input of shape " + shape(in)), in[0]);
  }
  int64_t out_channels() const override { return width_; }

  // nn::Module::train sets the flag of this tree; the TorchScript module keeps its own.
  void train(bool on = true) override {
    BackboneImpl::train(on);
    module_.train(on);
  }

  void check_trainable() const {
    int64_t params = 0, trainable = 0;
    for (const auto& p : module_.parameters()) {
      ++params;
      trainable += p.requires_grad();
    }
    DT_CHECK(trainable > 0, "TorchScript backbone ", path_, " has no trainable parameter: expected at least one with ",
             "requires_grad, found ", params, " parameters",
             params ? ", all with requires_grad False (set requires_grad_(True) on what should train before export)"
                    : " (a torch.jit.freeze'd module holds its weights as constants; export the unfrozen module)");
  }

  void check_mode_follows_training() const {
    int count = 0;
    const std::string op = frozen_mode_op(module_, &count);
    DT_CHECK(op.empty(), "TorchScript backbone ", path_,
             " cannot switch between training and extraction: expected BatchNorm and dropout to read self.training, "
             "found ",
             count, " op(s) whose mode was fixed at export, e.g. ", op,
             ". torch.jit.trace records the one mode it ran in; ", kExportHint, " instead");
  }

  // Runs forward on 2 × C × H × W zeros in eval mode (no buffer changes, no random draw)
  // for F; restores the mode.
  void probe_width(const ProbeShape& p) {
    torch::NoGradGuard no_grad;
    const bool was = is_training();
    module_.eval();
    const std::vector<int64_t> in{2, p.channels, p.height, p.width};
    const auto out = checked(run(torch::zeros(in), "on a probe batch of shape " + shape(in) +
                                                       " (data.channels × data.height × data.width)"),
                             2);
    module_.train(was);
    width_ = out.size(1);
    DT_CHECK(width_ > 0, "TorchScript backbone ", path_, " returned 0 features");
  }

  // The interpreter reports an op's failure as a std::runtime_error whose text is the
  // TorchScript traceback ending in the error line: that line first, then the traceback.
  torch::jit::IValue run(torch::Tensor x, const std::string& what) {
    EagerInterpreter eager;
    std::string text;
    try {
      return module_.forward({std::move(x)});
    } catch (const c10::Error& e) {
      text = e.what_without_backtrace();
    } catch (const std::exception& e) {
      text = e.what();
    }
    DT_THROW("TorchScript backbone ", path_, " failed ", what, ": ", last_line(text), "\n", text);
  }

  static std::string last_line(const std::string& text) {
    const auto end = text.find_last_not_of("\n ");
    if (end == std::string::npos) return text;
    const auto newline = text.rfind('\n', end);
    const size_t begin = newline == std::string::npos ? 0 : newline + 1;
    return text.substr(begin, end + 1 - begin);
  }

  // The output must be one float tensor, B × F or B × F × h × w.
  torch::Tensor checked(const torch::jit::IValue& out, int64_t batch) const {
    DT_CHECK(out.isTensor(), "TorchScript backbone ", path_,
             ": forward must return one tensor (B × F features or a B × F × h × w map), returned a ",
             out.tagKind());
    auto t = out.toTensor();
    DT_CHECK((t.dim() == 2 || t.dim() == 4) && t.size(0) == batch, "TorchScript backbone ", path_,
             ": forward must return B × F features or a B × F × h × w map for B = ", batch, ", returned shape ",
             shape(t.sizes().vec()));
    DT_CHECK(t.is_floating_point(), "TorchScript backbone ", path_, ": forward must return floating-point features, ",
             "returned ", t.scalar_type());
    return t;
  }

  static std::string shape(const std::vector<int64_t>& s) {
    std::ostringstream os;
    os << c10::IntArrayRef(s);
    return os.str();
  }

  std::string path_;
  torch::jit::Module module_;
  int64_t width_ = 0;
};

}  // namespace

std::shared_ptr<BackboneImpl> make_torchscript_backbone(const std::string& path, const ProbeShape& probe) {
  DT_CHECK(!path.empty(), "model.backbone torchscript needs model.path: the file torch.jit.script(net).save wrote");
  return std::make_shared<TorchScriptBackboneImpl>(path, probe);
}

torch::jit::Module* torchscript_module(BackboneImpl& backbone) {
  auto* ts = dynamic_cast<TorchScriptBackboneImpl*>(&backbone);
  return ts ? &ts->module_ : nullptr;
}

}  // namespace dualtune::models

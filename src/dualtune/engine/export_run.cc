#include "dualtune/engine/export_run.h"

#include <unistd.h>

#include <filesystem>

#include <torch/script.h>

#include "dualtune/config/config.h"
#include "dualtune/data/class_map.h"
#include "dualtune/engine/checkpoint.h"
#include "dualtune/engine/settings.h"
#include "dualtune/features/npy.h"
#include "dualtune/models/state_dict_file.h"
#include "dualtune/models/torchscript_backbone.h"
#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"
#include "dualtune/util/run_dir.h"

namespace fs = std::filesystem;

namespace dualtune::engine {
namespace {

const char* kReadme = R"(# A dualtune export

Rebuild the network in Python (torch only) with `python/dualtune_models.py` from the
dualtune repository:

```python
import sys; sys.path.insert(0, "DUALTUNE_REPO/python")
import dualtune_models
model = dualtune_models.load("THIS_DIR")          # torch.nn.Module in eval mode
x = dualtune_models.preprocess(images, "THIS_DIR")  # uint8 N x H x W x C (or N x H x W) -> float N x C x H x W
e = model(x)                                       # N x D embeddings, equal to `dualtune extract`
```

`model.json` describes the architecture and the input (size, channels, mean, std);
`state_dict.pt` is a plain dict of tensors (`torch.load`); `classes.json` and
`classifier.npy` (C x D) are the training classes and the classifier. Embeddings are not
L2-normalised; dualtune compares them by cosine similarity. The directory is also a valid
`old.path` for the next compatible upgrade, `--model` for `dualtune extract`, and
`model.init` for a new training.
)";

nlohmann::json describe(const config::Config& cfg, const models::EmbeddingModel& model, const std::string& run_dir) {
  const InputSpec in = input_spec(cfg);
  const auto meta = read_meta(run_dir);
  const auto& spec = model->spec;
  return {{"format", "dualtune-export"},
          {"format_version", 1},
          {"source_run", fs::absolute(run_dir).lexically_normal().string()},
          {"code_version", code_version()},
          {"complete", meta.value("complete", false)},
          {"epochs_done", meta.value("epochs_done", int64_t{-1})},
          {"architecture",
           {{"backbone", spec.backbone},
            {"in_channels", spec.in_channels},
            {"backbone_width", model->backbone->out_channels()},
            {"embedding_dim", model->embedding_dim()},
            {"projection", static_cast<bool>(model->proj)},
            {"num_classes", spec.num_classes},
            {"classifier", {{"type", spec.classifier}, {"normalized", model->classifier->normalized},
                            {"scale", spec.classifier == "softmax" ? 1.0 : spec.scale}}},
            {"forward", "e = neck(proj(mean over H, W of backbone(x))); proj absent when projection is false; "
                        "neck = BatchNorm1d (eval: running statistics)"}}},
          {"input",
           {{"height", in.height},
            {"width", in.width},
            {"channels", in.channels},
            {"mean", in.mean},
            {"std", in.std},
            {"pixels", "RGB (3 channels) or gray (1), uint8 / 255, then (x - mean) / std per channel"},
            {"resize", "to width x height: OpenCV INTER_AREA when shrinking, INTER_LINEAR when enlarging"}}},
          {"embedding", "raw (not L2-normalised); dualtune compares embeddings by cosine similarity"},
          {"files",
           {{"state_dict", "state_dict.pt"}, {"classes", "classes.json"}, {"classifier", "classifier.npy"},
            {"config", "config.yml"}}}};
}

/// model.pt: the trained TorchScript backbone with the embedding head, one module whose
/// forward(x) is what `dualtune extract` computes (eval mode): f = backbone(x), pooled
/// over H, W when 4-D, then proj (when there is one), then the BatchNorm1d neck with its
/// running statistics. torch.jit.load(path) in Python or C++ runs it without dualtune.
void write_torchscript_model(models::EmbeddingModel& model, const std::string& path) {
  torch::jit::Module* backbone = models::torchscript_module(*model->backbone);
  DT_CHECK(backbone, "export: expected a torchscript backbone");
  torch::NoGradGuard no_grad;
  torch::jit::Module m(c10::QualifiedName("__torch__.dualtune.ExportedEmbedding"));
  m.register_module("backbone", backbone->clone());
  auto buffer = [&](const std::string& name, const torch::Tensor& t) {
    m.register_buffer(name, t.detach().to(torch::kFloat).contiguous().clone());
  };
  buffer("neck_mean", model->neck->running_mean);
  buffer("neck_var", model->neck->running_var);
  buffer("neck_weight", model->neck->weight);
  buffer("neck_bias", model->neck->bias);
  std::string proj;
  if (model->proj) {
    buffer("proj_weight", model->proj->weight);
    buffer("proj_bias", model->proj->bias);
    proj = "    f = torch.addmm(self.proj_bias, f, self.proj_weight.t())\n";
  }
  const std::string eps = c10::str(model->neck->options.eps());
  m.define("def forward(self, x: Tensor) -> Tensor:\n"
           "    f = self.backbone.forward(x)\n"
           "    if f.dim() == 4:\n"
           "        f = f.mean([2, 3])\n" +
           proj +
           "    return (f - self.neck_mean) / torch.sqrt(self.neck_var + " + eps +
           ") * self.neck_weight + self.neck_bias\n");
  m.eval();
  m.save(path);  // into the export's temporary directory, renamed into place when complete
}

void write_export(const std::string& run_dir, const std::string& dir, nlohmann::json* description) {
  const RunPaths run{run_dir}, out{dir};
  const auto cfg = config::Config::load(run.config());
  auto model = load_run_model(run_dir);
  models::NamedTensors tensors;
  for (const auto& p : model->named_parameters()) tensors.emplace_back(p.key(), p.value());
  for (const auto& b : model->named_buffers()) tensors.emplace_back(b.key(), b.value());
  models::write_state_dict_file(out.state_dict(), tensors);

  data::ClassMap::load(run.classes()).save(out.classes());
  const auto w = model->classifier->weight.detach().to(torch::kFloat).contiguous();
  npy::save_f32(dir + "/classifier.npy", w.data_ptr<float>(), {w.size(0), w.size(1)});
  write_text_atomic(out.config(), read_file(run.config()));
  // meta.json: the run's config hash identifies the model in a gallery (model_fingerprint)
  // and marks runs trained against it as stale when it is retrained.
  if (fs::exists(run.meta())) write_text_atomic(out.meta(), read_file(run.meta()));
  *description = describe(cfg, model, run_dir);
  if (model->spec.backbone == "torchscript") {
    // The run's copy of the user's module (load_run_model builds the architecture from
    // it) and the trained network as one TorchScript module.
    fs::copy_file(run.backbone_module(), out.backbone_module());
    write_torchscript_model(model, dir + "/model.pt");
    (*description)["files"]["torchscript"] = "model.pt";
    (*description)["files"]["backbone_module"] = "backbone.pt";
  }
  write_text_atomic(dir + "/model.json", description->dump(2));
  write_text_atomic(dir + "/README.md", kReadme);
}

}  // namespace

nlohmann::json export_run(const std::string& run_dir, const std::string& out_dir) {
  const RunPaths run{run_dir};
  DT_CHECK(fs::is_directory(run_dir) && fs::exists(run.config()), "export: ", run_dir,
           " is not a dualtune run directory (expected config.yml, classes.json and checkpoint.pt)");
  DT_CHECK(fs::exists(run.checkpoint()), "export: ", run_dir, " has no checkpoint.pt (no finished epoch yet)");
  // A built-in backbone: state dict + python/dualtune_models.py. A torchscript backbone:
  // the same, plus model.pt (the trained module with the head, as TorchScript).
  DT_CHECK(!fs::exists(out_dir) || (fs::is_directory(out_dir) && fs::is_empty(out_dir)), "export: --out ", out_dir,
           " already exists and is not an empty directory; remove it or choose another");
  const fs::path target = fs::absolute(out_dir).lexically_normal();
  const std::string tmp = target.string() + ".tmp." + std::to_string(::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  nlohmann::json description;
  try {
    write_export(run_dir, tmp, &description);
    if (fs::exists(target)) fs::remove(target);  // the empty directory checked above
    fs::rename(tmp, target);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  return description;
}

}  // namespace dualtune::engine

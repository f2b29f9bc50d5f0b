#include <string>

#include "dualtune/config/config.h"
#include "dualtune/util/install_paths.h"

namespace dualtune::config {

// Every key a training config may set, with its default. validate() in validate.cc
// holds the allowed ranges and enum values. data.root defaults to kFashionMnistDir.
const char* schema_yaml() {
  static const std::string yaml = std::string(R"YAML(
seed: 0
threads: 0                 # libtorch intra-op threads; 0 = all cores
device: auto               # cpu | cuda | auto: where the model and every tensor of a step live (auto = cuda when torch::cuda::is_available(), else cpu; engine/device.h)
output_dir: runs/default   # the run directory
log_every: 50              # steps between progress lines / JSON log records
test_accuracy: true        # top-1 classification on data.test_split after each epoch
data:
  format: idx              # idx | image_folder | market1501
  root: )YAML") + kFashionMnistDir + R"YAML(
  train_split: train       # idx: train|test; image_folder: subfolder; market1501: train
  test_split: test         # split used by extract/eval when none is given
  classes: all             # all | "0-4" | "0,2,7" | "fraction:0.5" (of the sorted class names)
  limit: 0                 # >0: use only this many training items (quick runs, tests)
  height: 28
  width: 28
  channels: 1
  mean: [0.2860]
  std: [0.3530]
  workers: 2
  sampler: random          # random | pk
  p: 16                    # identities per batch (pk)
  k: 4                     # images per identity (pk)
augment:
  flip: true
  pad: 2
  erasing: 0.0
model:
  backbone: convnet-s      # convnet-s | convnet-m | resnet18 | resnet50 | torchscript
  path: ""                 # torchscript: the module file, torch.jit.script(net).save(path); forward B x C x H x W -> B x F
  embedding_dim: 128       # 0 = backbone width (no projection)
  init: ""                 # pretrained start: TorchScript file, torch.save state dict or run/export directory (engine/model_init.h)
  init_strict: true        # refuse a shape mismatch, a missing backbone tensor or an unplaced source tensor
loss:
  type: softmax            # softmax | cosface | arcface (classifier and its loss)
  weight: 1.0
  label_smoothing: 0.1
  scale: 30.0              # s of cosface/arcface
  margin: 0.35             # m of cosface/arcface
  triplet: 0.0             # weight of batch-hard triplet (use sampler: pk)
  triplet_margin: 0.3
optim:
  name: adam               # adam | sgd
  lr: 0.001
  weight_decay: 0.0005
  momentum: 0.9
  batch_size: 128
  epochs: 6
  schedule: cosine         # cosine | multistep | constant
  warmup_epochs: 0
  milestones: []
  gamma: 0.1
  precision: fp32          # fp32 | bf16 | auto (bf16 = CPU autocast of the forward, fast only with avx512_bf16/AMX; auto = bf16 there)
old:                       # the old model, or a list of them (compat terms summed over the list)
  path: ""                 # old model: a dualtune run directory, a TorchScript file or an ONNX file (*.onnx)
  class_map: ""            # TorchScript / ONNX: class map JSON of the old model
  classifier: ""           # TorchScript / ONNX: old classifier weights .npy (Co x Do), optional
  weight: 1.0              # multiplies every compat term of this old model
compat:
  method: independent      # independent | l2 | bct | dual-tuning
  l2_weight: 1.0
  bct_weight: 1.0
  bct_rescale: true        # rescale synthesized rows to the mean norm of learned rows
  proto_form: triplet      # triplet | softmax | regress (losses/compat/prototype.h)
  proto_weight: 0.1
  proto_margin: 0.3
  proto_margin_unit: absolute  # absolute (old-space distances) | spacing (in units of the mean nearest-prototype distance)
  proto_scale: 16.0
  prototypes: ""           # precomputed prototypes directory (else computed at start)
  n2o_weight: 0.2
  n2o_extended: false      # L_n2o over Wo extended with rescaled synthesized rows
  o2n_weight: 0.2
  mix_weight: 0.0
  mix_rho: 0.5
  contrast_weight: 0.0     # cross-model contrastive term (Hot-Refresh RACT), dual-tuning
  contrast_temperature: 0.05
  contrast_new_negatives: true  # also push from the new embeddings of other classes
transform:                 # forward transformation h (dualtune transform train; FCT)
  width: 2048              # width of the mixer's hidden blocks (ml-fct: 2048)
  depth: 2                 # hidden blocks of the mixer (ml-fct: 2)
  epochs: 30
  batch_size: 256
  lr: 0.0005
  weight_decay: 0.00003
  holdout: 0.05            # fraction of pairs held out to report the MSE on unseen items
  augmented_passes: 2      # passes over the training set with augmentation (plus one test-time pass)
  side_info: ""            # side-information model (run directory or TorchScript), "" = none
  side_dim: 0              # components of the side-information embedding kept (0 = all)
)YAML";
  return yaml.c_str();
}

}  // namespace dualtune::config

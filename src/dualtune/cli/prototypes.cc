// dualtune prototypes --old OLD --data ... --out DIR
#include <cstdio>

#include "dualtune/cli/commands.h"
#include "dualtune/cli/data_options.h"
#include "dualtune/engine/extract.h"
#include "dualtune/engine/prototypes.h"
#include "dualtune/engine/settings.h"
#include "dualtune/util/atomic_file.h"

namespace dualtune::cli {

void register_prototypes_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "prototypes", "Old-space class prototypes P[c] = mean old embedding of class c over a training set (npy + class map)");
  struct Opts {
    std::string old, class_map, out;
    DataOptions data;
    int threads = 0;
  };
  auto opts = std::make_shared<Opts>();
  cmd->add_option("--old", opts->old, "old model: run directory, TorchScript file or ONNX file (*.onnx)")->required();
  cmd->add_option("--class-map", opts->class_map, "class map JSON of a TorchScript or ONNX old model");
  add_data_options(*cmd, opts->data);
  cmd->add_option("--out,-o", opts->out, "output directory (prototypes.npy, classes.json)")->required();
  cmd->add_option("--threads", opts->threads, "libtorch threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  cmd->callback([opts] {
    engine::set_threads(opts->threads);
    ensure_writable_dir(opts->out);
    const auto resolved = resolve_data_options(opts->data, opts->old);
    const auto dataset = data::open_dataset(resolved.spec);
    const auto fs = engine::extract_features(engine::embedder_for(opts->old, opts->class_map, resolved.precision, resolved.device), dataset,
                                             resolved.transform, 256, opts->data.workers);
    const auto p = engine::class_means(fs);
    engine::save_prototypes(opts->out, p);
    std::printf("%lld prototypes of size %lld written to %s\n", static_cast<long long>(p.matrix.size(0)),
                static_cast<long long>(p.matrix.size(1)), opts->out.c_str());
  });
}

}  // namespace dualtune::cli

// dualtune extract --model RUN_DIR|model.pt --data ... --out DIR
#include <cstdio>

#include "dualtune/cli/commands.h"
#include "dualtune/cli/data_options.h"
#include "dualtune/engine/extract.h"
#include "dualtune/engine/settings.h"
#include "dualtune/util/atomic_file.h"

namespace dualtune::cli {

void register_extract_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("extract", "Embeddings of a dataset split with a model -> features.npy, labels.npy, "
                                            "cams.npy, paths.txt, classes.json");
  struct Opts {
    std::string model, class_map, out;
    DataOptions data;
    int64_t batch = 256;
    int threads = 0;
  };
  auto opts = std::make_shared<Opts>();
  cmd->add_option("--model,-m", opts->model, "run directory, or a TorchScript file or ONNX file (*.onnx) returning B x D embeddings")->required();
  cmd->add_option("--class-map", opts->class_map, "class map JSON (TorchScript and ONNX models)");
  add_data_options(*cmd, opts->data);
  cmd->add_option("--out,-o", opts->out, "output directory")->required();
  cmd->add_option("--batch", opts->batch, "inference batch size")->check(CLI::PositiveNumber);
  cmd->add_option("--threads", opts->threads, "libtorch threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  cmd->callback([opts] {
    engine::set_threads(opts->threads);
    const auto resolved = resolve_data_options(opts->data, opts->model);  // a bad device or precision: before any output
    ensure_writable_dir(opts->out);
    const auto dataset = data::open_dataset(resolved.spec);
    const auto fs = engine::extract_features(engine::embedder_for(opts->model, opts->class_map, resolved.precision, resolved.device),
                                             dataset, resolved.transform, opts->batch, opts->data.workers);
    fs.save(opts->out);
    std::printf("%lld × %lld features written to %s (%s: %s)\n", static_cast<long long>(fs.n),
                static_cast<long long>(fs.d), opts->out.c_str(), resolved.precision.c_str(),
                resolved.precision_reason.c_str());
  });
}

}  // namespace dualtune::cli

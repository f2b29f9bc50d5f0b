// dualtune export --model RUN --out DIR
#include <cstdio>

#include "dualtune/cli/commands.h"
#include "dualtune/engine/export_run.h"
#include "dualtune/engine/settings.h"

namespace dualtune::cli {

void register_export_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("export", "A trained run -> state_dict.pt (Python's torch.load), model.json, "
                                           "classes.json, classifier.npy; rebuilt in Python by python/dualtune_models.py");
  struct Opts {
    std::string model, out;
    int threads = 0;
  };
  auto opts = std::make_shared<Opts>();
  cmd->add_option("--model,-m", opts->model, "run directory")->required();
  cmd->add_option("--out,-o", opts->out, "export directory (must not exist, or be empty)")->required();
  cmd->add_option("--threads", opts->threads, "libtorch threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  cmd->callback([opts] {
    engine::set_threads(opts->threads);
    const auto d = engine::export_run(opts->model, opts->out);
    const auto& a = d["architecture"];
    std::printf("exported %s (%s, D=%lld, %lld classes) to %s\n", opts->model.c_str(),
                a["backbone"].get<std::string>().c_str(), static_cast<long long>(a["embedding_dim"].get<int64_t>()),
                static_cast<long long>(a["num_classes"].get<int64_t>()), opts->out.c_str());
  });
}

}  // namespace dualtune::cli

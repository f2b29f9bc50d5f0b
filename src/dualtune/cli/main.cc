// dualtune: compatible embedding-model upgrades (Dual-Tuning and baselines).
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "dualtune/cli/commands.h"
#include "dualtune/util/allocator.h"
#include "dualtune/util/error.h"
#include "dualtune/util/install_paths.h"
#include "dualtune/util/provenance.h"

namespace {

/// Where the shipped configs and docs are (found relative to this binary), for --help.
std::string where_footer() {
  auto line = [](const char* label, const std::string& what) {
    const std::string dir = dualtune::shipped_dir(what);
    return std::string(label) + (dir.empty() ? "not found (expected <prefix>/share/dualtune/" + what + ")" : dir) + "\n";
  };
  return line("Shipped configs: ", "configs") + line("Documentation:   ", "docs") +
         "Manual page:     man dualtune (when installed)";
}

}  // namespace

int main(int argc, char** argv) {
  // Referencing it keeps the allocator-tuning library linked; its constructor already ran.
  (void)dualtune::malloc_tuning_active();
  CLI::App app{
      "dualtune: train a new embedding model whose query embeddings stay comparable with the "
      "deployed model's gallery (Dual-Tuning, BCT, L2), and prove it with the compatibility protocol."};
  std::string version = dualtune::version_text();
  version.pop_back();  // CLI11 adds the final newline
  app.set_version_flag("--version", version, "Print the version, the git revision and the libtorch, FAISS and OpenCV versions");
  app.footer(where_footer());
  app.require_subcommand(1);
  dualtune::cli::register_train_command(app);
  dualtune::cli::register_prototypes_command(app);
  dualtune::cli::register_extract_command(app);
  dualtune::cli::register_export_command(app);
  dualtune::cli::register_eval_command(app);
  dualtune::cli::register_demo_command(app);
  dualtune::cli::register_transform_command(app);
  dualtune::cli::register_gallery_command(app);
  dualtune::cli::register_serve_command(app);
  dualtune::cli::register_proxy_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const dualtune::Error& e) {
    std::fprintf(stderr, "dualtune: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dualtune: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

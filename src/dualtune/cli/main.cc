// dualtune: compatible embedding-model upgrades (Dual-Tuning and baselines).
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "dualtune/cli/commands.h"
#include "dualtune/util/allocator.h"
#include "dualtune/util/error.h"

int main(int argc, char** argv) {
  // Referencing it keeps the allocator-tuning library linked; its constructor already ran.
  (void)dualtune::malloc_tuning_active();
  CLI::App app{
      "dualtune: train a new embedding model whose query embeddings stay comparable with the "
      "deployed model's gallery (Dual-Tuning, BCT, L2), and prove it with the compatibility protocol."};
  app.require_subcommand(1);
  dualtune::cli::register_train_command(app);
  dualtune::cli::register_prototypes_command(app);
  dualtune::cli::register_extract_command(app);
  dualtune::cli::register_eval_command(app);
  dualtune::cli::register_demo_command(app);
  dualtune::cli::register_gallery_command(app);
  dualtune::cli::register_serve_command(app);
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

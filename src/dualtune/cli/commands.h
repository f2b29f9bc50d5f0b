#pragma once
// One registration function per `dualtune <command>`, each in its own file.
#include <CLI/CLI.hpp>

namespace dualtune::cli {

void register_train_command(CLI::App& app);
void register_prototypes_command(CLI::App& app);
void register_extract_command(CLI::App& app);
void register_export_command(CLI::App& app);
void register_eval_command(CLI::App& app);
void register_demo_command(CLI::App& app);
void register_transform_command(CLI::App& app);
void register_gallery_command(CLI::App& app);
void register_serve_command(CLI::App& app);
void register_proxy_command(CLI::App& app);

}  // namespace dualtune::cli

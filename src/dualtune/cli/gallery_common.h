#pragma once
// Pieces shared by the `dualtune gallery` subcommands (one file per group of them:
// gallery.cc, gallery_rollout.cc, gallery_search.cc, gallery_backfill.cc, gallery_curve.cc,
// gallery_transform.cc). Each add_*_command registers one subcommand of `gallery`.
#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "dualtune/cli/data_options.h"
#include "dualtune/gallery/gallery.h"

namespace dualtune::cli {

void add_rollout_command(CLI::App& gallery);
void add_rollback_command(CLI::App& gallery);
void add_search_command(CLI::App& gallery);
void add_backfill_command(CLI::App& gallery);
void add_curve_command(CLI::App& gallery);
/// `gallery transform` lives with the other uses of h, in transform.cc.
void register_gallery_transform(CLI::App& gallery);

/// The embedder of a registered model, with the test-time transform of its run (or of
/// --data-config). Throws when the gallery records no path for it.
std::unique_ptr<gallery::ImageEmbedder> gallery_embedder(const gallery::ModelInfo& m, const DataOptions& data);

/// JSON image-source spec of a dataset split (gallery/image_embedder.h).
std::string dataset_source_json(const data::DatasetSpec& spec);

/// Images of a dataset split (key = dataset path, label = class name) or of a list file
/// (one image path per line, unlabelled), and their source spec (embedder.h). The
/// items' source_id is left 0 (Gallery::add_source gives it).
struct ImageItems {
  std::string source;
  std::vector<gallery::ItemRecord> items;
};
ImageItems image_items(const DataOptions& data, const std::string& list, const std::string& model_path);

/// What `gallery create` and `gallery rollout` register: the name and the model.
struct ModelCommandOptions {
  std::string dir, model, path, data_config;
  int64_t dim = 0;
};
/// Adds dir, --model, --model-path, --dim, --data-config to c.
std::shared_ptr<ModelCommandOptions> add_model_options(CLI::App& c);
/// --model-path P or --dim D -> a registration (dim and fingerprint from the model).
gallery::ModelRegistration registration(const std::string& name, const std::string& path, int64_t dim,
                                        const std::string& data_config);

/// Opens a gallery, printing cache notices to stderr.
std::unique_ptr<gallery::Gallery> open_gallery(const std::string& dir, bool read_only = false);

}  // namespace dualtune::cli

// dualtune gallery <create|import|add|status|calibrate|retire> (this file) and rollout,
// rollback, search, backfill, curve, transform (gallery_rollout.cc, gallery_search.cc,
// gallery_backfill.cc, gallery_curve.cc, gallery_transform.cc): the gallery transition of docs/GALLERY.md on
// a gallery directory. Each subcommand is an options struct, run_<name>(options) doing
// the work, and add_<name>_command registering it; register_gallery_command lists them.
#include <cstdio>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "dualtune/app/gallery_status.h"
#include "dualtune/cli/commands.h"
#include "dualtune/cli/gallery_common.h"
#include "dualtune/data/image_decode.h"
#include "dualtune/engine/device.h"
#include "dualtune/engine/settings.h"
#include "dualtune/engine/torch_image_embedder.h"
#include "dualtune/features/feature_set.h"
#include "dualtune/util/error.h"

namespace dualtune::cli {

std::unique_ptr<gallery::Gallery> open_gallery(const std::string& dir, bool read_only) {
  gallery::OpenOptions o;
  o.read_only = read_only;
  o.notice = [](const std::string& s) { std::fprintf(stderr, "notice: %s\n", s.c_str()); };
  return gallery::Gallery::open(dir, o);
}

std::unique_ptr<gallery::ImageEmbedder> gallery_embedder(const gallery::ModelInfo& m, const DataOptions& data) {
  DT_CHECK(!m.path.empty(), "gallery: model '", m.name, "' has no model file recorded (its embeddings were imported); "
           "expected a run directory or TorchScript file to embed images");
  DataOptions d;
  d.config = data.config;  // only the transform is taken from here
  engine::GalleryEmbedderOptions o;
  o.model_path = m.path;
  o.transform = resolve_data_options(d, m.path).transform;
  o.workers = data.workers;
  o.precision = embedding_precision(data);
  o.device = engine::resolve_device(data.device).name;
  return engine::make_gallery_embedder(o);
}

std::string dataset_source_json(const data::DatasetSpec& spec) {
  return nlohmann::json{{"format", spec.format}, {"root", spec.root}, {"split", spec.split}}.dump();
}

ImageItems image_items(const DataOptions& data, const std::string& list, const std::string& model_path) {
  ImageItems out;
  if (!list.empty()) {
    std::ifstream is(list);
    DT_CHECK(is.good(), "cannot read the image list ", list);
    out.source = R"({"format":"files"})";
    std::string line;
    while (std::getline(is, line))
      if (!line.empty()) out.items.push_back({line, "", -1, 0});
    DT_CHECK(!out.items.empty(), "image list ", list, ": expected one image path per line, found none");
    return out;
  }
  const auto resolved = resolve_data_options(data, model_path);
  const auto ds = data::open_dataset(resolved.spec);
  out.source = dataset_source_json(resolved.spec);
  for (size_t i = 0; i < ds->size(); ++i) {
    const int64_t l = ds->label(i);
    out.items.push_back({ds->path(i), l >= 0 ? ds->classes().name(l) : "", ds->camera(i), 0});
  }
  return out;
}

gallery::ModelRegistration registration(const std::string& name, const std::string& path, int64_t dim,
                                        const std::string& data_config) {
  gallery::ModelRegistration r{name, dim, path, ""};
  if (path.empty()) {
    DT_CHECK(dim > 0, "gallery: model '", name, "' needs --model-path (a run directory or TorchScript file) or, for "
             "embeddings imported without a model, --dim");
    return r;
  }
  gallery::ModelInfo m;
  m.name = name;
  m.path = path;
  DataOptions d;
  d.config = data_config;
  const auto e = gallery_embedder(m, d);
  DT_CHECK(dim <= 0 || dim == e->dim(), "gallery: --dim ", dim, " but model ", path, " embeds ", e->dim());
  r.dim = e->dim();
  r.config_hash = e->fingerprint();
  return r;
}

// --- create (rollout and rollback: gallery_rollout.cc) --------------------------------

std::shared_ptr<ModelCommandOptions> add_model_options(CLI::App& c) {
  auto o = std::make_shared<ModelCommandOptions>();
  c.add_option("dir", o->dir, "gallery: a directory, or a postgresql://USER@HOST:PORT/DB URL")->required();
  c.add_option("--model,-m", o->model, "model name (e.g. old, new)")->required();
  c.add_option("--model-path", o->path, "run directory or TorchScript file of the model");
  c.add_option("--dim", o->dim, "embedding size, when the model's embeddings are only imported (no model file)");
  c.add_option("--data-config", o->data_config, "config whose data section gives a TorchScript model's input transform");
  return o;
}

namespace {

void run_create(const ModelCommandOptions& o) {
  const auto reg = registration(o.model, o.path, o.dim, o.data_config);
  gallery::Gallery::create(o.dir, reg);
  std::printf("created gallery %s with deployed model %s (d = %lld)\n", gallery::Store::display_name(o.dir).c_str(),
              reg.name.c_str(),
              static_cast<long long>(reg.dim));
}

void add_create_command(CLI::App& gallery) {
  auto* c = gallery.add_subcommand("create", "Create a gallery (a directory, or a postgresql:// URL) with its deployed model");
  auto o = add_model_options(*c);
  c->callback([o] { run_create(*o); });
}

// --- import -----------------------------------------------------------------------------

struct ImportOptions {
  std::string dir, model, features;
  DataOptions images;
  bool skip_existing = false;
  int64_t chunk = 10000;
};

void run_import(const ImportOptions& o) {
  const auto fs = features::FeatureSet::load(o.features, false);
  DT_CHECK(fs.n > 0, "gallery import: ", o.features, " holds no rows");
  for (int64_t i = 0; i < fs.n; ++i)
    DT_CHECK(!fs.paths[i].empty(), "gallery import: ", o.features, ": expected paths.txt with one key per row, "
             "found ", fs.paths.empty() || fs.paths[0].empty() ? "none" : "an empty key at row " + std::to_string(i));
  auto gal = open_gallery(o.dir);
  int64_t source;
  if (!o.images.root.empty()) {
    DT_CHECK(!o.images.format.empty(), "gallery import: --root needs --format");
    data::DatasetSpec spec;
    spec.format = o.images.format;
    spec.root = o.images.root;
    spec.split = o.images.split;
    source = gal->add_source(dataset_source_json(spec));
  } else {
    DT_CHECK(o.images.format.empty(), "gallery import: --format needs --root");
    source = gal->add_source(R"({"format":"files"})");
  }
  std::vector<gallery::ItemRecord> items;
  for (int64_t i = 0; i < fs.n; ++i) {
    const int64_t l = fs.labels[i];
    std::string label = l < 0 ? "" : fs.class_names.empty() ? std::to_string(l) : fs.class_names[l];
    items.push_back({fs.paths[i], label, fs.cams[i], source});
  }
  const auto rep = gal->import_vectors(o.model, items, fs.d, fs.features.data(), o.skip_existing, o.chunk);
  std::printf("imported %lld vectors of %s (%lld new items, %lld skipped) into %s\n",
              static_cast<long long>(rep.vectors), o.model.c_str(), static_cast<long long>(rep.added),
              static_cast<long long>(rep.skipped), gallery::Store::display_name(o.dir).c_str());
}

void add_import_command(CLI::App& gallery) {
  auto o = std::make_shared<ImportOptions>();
  auto* c = gallery.add_subcommand("import", "Import embeddings from a feature directory (features.npy + paths.txt as "
                                             "keys; labels.npy, cams.npy, classes.json optional): no image, no model run");
  c->add_option("dir", o->dir, "gallery: a directory, or a postgresql://USER@HOST:PORT/DB URL")->required();
  c->add_option("--model,-m", o->model, "the model that produced the features")->required();
  c->add_option("--features", o->features, "feature directory")->required();
  c->add_option("--format", o->images.format, "where the images of these keys are, for a later backfill: "
                                              "idx | image_folder | market1501 (default: the keys are image paths)");
  c->add_option("--root", o->images.root, "dataset root of the images");
  c->add_option("--split", o->images.split, "dataset split of the images");
  c->add_flag("--skip-existing", o->skip_existing, "skip keys that already have this model's vector (resume an interrupted import)");
  c->add_option("--chunk", o->chunk, "rows per transaction")->check(CLI::PositiveNumber);
  c->callback([o] { run_import(*o); });
}

// --- add ----------------------------------------------------------------------------------

struct AddOptions {
  std::string dir, list;
  DataOptions data;
  int64_t batch = 256;
  int threads = 0;
  bool skip_existing = false;
};

void run_add(const AddOptions& o) {
  engine::set_threads(o.threads);
  auto gal = open_gallery(o.dir);
  std::vector<std::unique_ptr<gallery::ImageEmbedder>> owned;
  std::vector<std::pair<std::string, gallery::ImageEmbedder*>> embedders;
  std::string deployed_path;
  for (const auto& m : gal->models()) {
    if (m.role == gallery::Role::kRetired || m.role == gallery::Role::kRolledBack) continue;
    if (m.role == gallery::Role::kDeployed) deployed_path = m.path;
    owned.push_back(gallery_embedder(m, o.data));
    embedders.emplace_back(m.name, owned.back().get());
  }
  auto images = image_items(o.data, o.list, deployed_path);
  const int64_t source = gal->add_source(images.source);
  for (auto& it : images.items) it.source_id = source;
  const auto rep = gal->add_images(images.items, embedders, o.batch, o.skip_existing, [](int64_t done, int64_t total) {
    std::fprintf(stderr, "\radded %lld / %lld", static_cast<long long>(done), static_cast<long long>(total));
  });
  std::fprintf(stderr, "\n");
  for (const auto& [key, err] : rep.failed) std::fprintf(stderr, "skipped %s: %s\n", key.c_str(), err.c_str());
  std::printf("added %lld items (%lld vectors, %lld skipped as existing, %zu failed) to %s\n",
              static_cast<long long>(rep.added), static_cast<long long>(rep.vectors),
              static_cast<long long>(rep.skipped), rep.failed.size(), gallery::Store::display_name(o.dir).c_str());
}

void add_add_command(CLI::App& gallery) {
  auto o = std::make_shared<AddOptions>();
  auto* c = gallery.add_subcommand("add", "Add images (a dataset split, or --list of image paths) embedded by every "
                                          "active model, one transaction per batch; bad images are reported and skipped");
  c->add_option("dir", o->dir, "gallery: a directory, or a postgresql://USER@HOST:PORT/DB URL")->required();
  add_data_options(*c, o->data);
  c->add_option("--list", o->list, "file with one image path per line (instead of a dataset)");
  c->add_option("--batch", o->batch, "images per batch (= per transaction)")->check(CLI::PositiveNumber);
  c->add_option("--threads", o->threads, "libtorch threads (0 = all cores)");
  c->add_flag("--skip-existing", o->skip_existing, "skip keys already in the gallery (resume an interrupted add)");
  c->callback([o] { run_add(*o); });
}

// --- status -------------------------------------------------------------------------------

struct StatusOptions {
  std::string dir;
  bool json = false, check = false;
};

void run_status(const StatusOptions& o) {
  auto gal = open_gallery(o.dir, true);
  std::cout << app::gallery_status_text(gal->status(), o.json);
  if (o.check) {
    auto store = gallery::Store::open(o.dir, true);
    const std::string r = store->integrity_check();
    DT_CHECK(r == "ok", "gallery ", gallery::Store::display_name(o.dir), ": integrity check failed: ", r);
    if (!o.json) std::printf("integrity check: ok\n");
  }
}

void add_status_command(CLI::App& gallery) {
  auto o = std::make_shared<StatusOptions>();
  auto* c = gallery.add_subcommand("status", "Models, roles, per-model counts, backfilled fraction and backfill progress");
  c->add_option("dir", o->dir, "gallery: a directory, or a postgresql://USER@HOST:PORT/DB URL")->required();
  c->add_flag("--json", o->json, "print JSON");
  c->add_flag("--check", o->check, "also run SQLite's integrity check (reads the whole database)");
  c->callback([o] { run_status(*o); });
}

// --- calibrate ----------------------------------------------------------------------------

struct CalibrateOptions {
  std::string dir, model, old_features, new_features;
};

void run_calibrate(const CalibrateOptions& o) {
  const auto fo = features::FeatureSet::load(o.old_features), fn = features::FeatureSet::load(o.new_features);
  DT_CHECK(fo.n == fn.n && fo.paths == fn.paths, "gallery calibrate: expected the same images in the same order in ",
           o.old_features, " (", fo.n, " rows) and ", o.new_features, " (", fn.n, " rows), found different paths");
  DT_CHECK(fo.labels == fn.labels, "gallery calibrate: the two feature directories have different labels");
  auto gal = open_gallery(o.dir);
  const std::string model = o.model.empty() ? gal->target_model().name : o.model;
  const auto rep = gal->fit_transition(model, fo.n, fo.features.data(), fn.features.data(), fn.labels.data());
  std::printf("calibration of %s queries: new/new logit = %.3f·s %+.3f, new->old logit = %.3f·s %+.3f "
              "(%lld genuine, %lld impostor pairs)\n",
              model.c_str(), rep.cal_new.a, rep.cal_new.b, rep.cal_old.a, rep.cal_old.b,
              static_cast<long long>(rep.cal_new.genuine), static_cast<long long>(rep.cal_new.impostor));
  std::printf("uncertainty order predictor: fitted on %lld pairs, correlation with the compatibility error %.3f\n",
              static_cast<long long>(rep.predictor.fitted_on), rep.predictor.train_corr);
}

void add_calibrate_command(CLI::App& gallery) {
  auto o = std::make_shared<CalibrateOptions>();
  auto* c = gallery.add_subcommand("calibrate", "Fit the rolling-out model's score calibrations (calibrated merge) and "
                                                "the uncertainty order's predictor on a labelled training set embedded "
                                                "by both models (two feature directories of the same images)");
  c->add_option("dir", o->dir, "gallery: a directory, or a postgresql://USER@HOST:PORT/DB URL")->required();
  c->add_option("--model,-m", o->model, "the rolling-out model");
  c->add_option("--old-features", o->old_features, "features of the training images by the deployed model")->required();
  c->add_option("--new-features", o->new_features, "features of the same images by the rolling-out model")->required();
  c->callback([o] { run_calibrate(*o); });
}

// --- retire -------------------------------------------------------------------------------

struct RetireOptions {
  std::string dir, model;
};

void run_retire(const RetireOptions& o) {
  auto gal = open_gallery(o.dir);
  gal->retire(o.model);
  std::cout << app::gallery_status_text(gal->status(), false);
}

void add_retire_command(CLI::App& gallery) {
  auto o = std::make_shared<RetireOptions>();
  auto* c = gallery.add_subcommand("retire", "Retire a model: drop its embeddings (the deployed model only once the "
                                             "rolling-out one covers every item; that one becomes deployed)");
  c->add_option("dir", o->dir, "gallery: a directory, or a postgresql://USER@HOST:PORT/DB URL")->required();
  c->add_option("--model,-m", o->model, "model to retire")->required();
  c->callback([o] { run_retire(*o); });
}

}  // namespace

void register_gallery_command(CLI::App& app) {
  auto* g = app.add_subcommand("gallery", "A versioned embedding store through a model upgrade: create, import/add, "
                                          "roll out a new model, search mixed versions, backfill, curve, retire "
                                          "(docs/GALLERY.md)");
  g->require_subcommand(1);
  // In this order in `dualtune gallery --help`.
  add_create_command(*g);
  add_rollout_command(*g);
  add_rollback_command(*g);
  add_import_command(*g);
  add_add_command(*g);
  add_status_command(*g);
  add_calibrate_command(*g);
  add_retire_command(*g);
  add_search_command(*g);
  add_backfill_command(*g);
  add_curve_command(*g);
  register_gallery_transform(*g);
}

}  // namespace dualtune::cli

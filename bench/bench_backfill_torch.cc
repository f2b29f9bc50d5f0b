// Backfill throughput against `dualtune extract` on the same images and model, side by
// side in one run (the machine is shared and noisy: only the ratio is meaningful). The
// store must not be the bottleneck: a backfill embeds exactly what extract embeds and
// additionally commits every batch (one SQLite transaction, fsync) and keeps the plan.
//   extract   engine::extract_features (loader threads + inference), as `dualtune extract`
//   backfill  Gallery::backfill with the gallery embedder (engine/torch_image_embedder.h),
//             from a gallery whose old vectors were imported, batch 256
// Each is run `reps` times alternately; the best of each is reported.
//
//   bench_backfill_torch [model=<trained here>] [images=10000] [threads=0] [reps=3]
//                        [data_root=/usr/share/datasets/fashion-mnist]
// Without a model a convnet-m is trained for one epoch on 2000 images (weights do not
// change the speed).
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "dualtune/config/config.h"
#include "dualtune/engine/extract.h"
#include "dualtune/engine/settings.h"
#include "dualtune/engine/torch_image_embedder.h"
#include "dualtune/engine/trainer.h"
#include "dualtune/gallery/gallery.h"
#include "dualtune/util/install_paths.h"

using namespace dualtune;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

int main(int argc, char** argv) {
  std::string model = argc > 1 ? argv[1] : "";
  const int64_t images = argc > 2 ? std::atoll(argv[2]) : 10000;
  const int threads = engine::set_threads(argc > 3 ? std::atoi(argv[3]) : 0);
  const int reps = argc > 4 ? std::atoi(argv[4]) : 3;
  const std::string root = argc > 5 ? argv[5] : kFashionMnistDir;
  const std::string work = "/tmp/bench_backfill_" + std::to_string(::getpid());
  fs::create_directories(work);
  if (model.empty()) {
    model = work + "/model";
    const auto cfg = config::Config::load(require_shipped_dir("configs") + "/fmnist/new_convnet_m.yml",
                                          {"data.root=" + root, "data.limit=2000", "optim.epochs=1", "test_accuracy=false",
                                           "output_dir=" + model, "threads=" + std::to_string(threads)});
    std::fprintf(stderr, "training a convnet-m for one epoch on 2000 images into %s\n", model.c_str());
    engine::train(cfg, {false, true});
  }
  const auto cfg = config::Config::load(model + "/config.yml", {"data.root=" + root});
  auto spec = engine::dataset_spec(cfg, "test");
  spec.limit = images;
  const auto dataset = data::open_dataset(spec);
  const auto transform = engine::transform_options(cfg, false);
  const int workers = 2;
  const int64_t n = static_cast<int64_t>(dataset->size());
  std::printf("backfill vs extract: %lld images of %s (%s split), model %s, %d threads, %d loader workers, batch 256\n",
              static_cast<long long>(n), root.c_str(), spec.split.c_str(), model.c_str(), threads, workers);

  const auto embed = engine::embedder_for(model);
  double best_extract = 0, best_backfill = 0;
  for (int r = 0; r < reps; ++r) {
    {
      const auto t0 = Clock::now();
      const auto fs_ = engine::extract_features(embed, dataset, transform, 256, workers);
      best_extract = std::max(best_extract, double(n) / std::chrono::duration<double>(Clock::now() - t0).count());
    }
    {
      // A gallery of the same images with (random) old vectors, the model rolling out.
      const std::string gdir = work + "/gallery" + std::to_string(r);
      auto g = gallery::Gallery::create(gdir, {"old", 8, "", ""});
      const int64_t source = g->add_source(nlohmann::json{{"format", spec.format}, {"root", spec.root}, {"split", spec.split}}.dump());
      std::vector<gallery::ItemRecord> items;
      std::vector<float> old(static_cast<size_t>(n * 8));
      std::mt19937 rng(1);
      std::normal_distribution<float> gauss;
      for (auto& v : old) v = gauss(rng);
      for (int64_t i = 0; i < n; ++i) items.push_back({dataset->path(static_cast<size_t>(i)), "", -1, source});
      g->import_vectors("old", items, 8, old.data(), false);
      engine::GalleryEmbedderOptions eo;
      eo.model_path = model;
      eo.transform = transform;
      eo.workers = workers;
      auto emb = engine::make_gallery_embedder(eo);
      g->rollout({"new", emb->dim(), model, emb->fingerprint()});
      gallery::BackfillOptions bo;
      bo.order = "random";
      bo.batch_size = 256;
      const auto t0 = Clock::now();
      const auto rep = g->backfill(bo, *emb);
      const double s = std::chrono::duration<double>(Clock::now() - t0).count();
      if (!rep.finished || rep.embedded != n) {
        std::fprintf(stderr, "backfill did not finish: %lld of %lld\n", static_cast<long long>(rep.embedded),
                     static_cast<long long>(n));
        return 1;
      }
      best_backfill = std::max(best_backfill, double(n) / s);
      g.reset();
      fs::remove_all(gdir);
    }
    std::fprintf(stderr, "rep %d: extract %.0f img/s, backfill %.0f img/s (best so far)\n", r + 1, best_extract, best_backfill);
  }
  std::printf("\n| %lld images | images/s (best of %d) |\n|---|---|\n", static_cast<long long>(n), reps);
  std::printf("| dualtune extract (extract_features) | %.0f |\n| gallery backfill (embed + commit per batch) | %.0f |\n",
              best_extract, best_backfill);
  std::printf("| ratio backfill / extract | **%.2f×** |\n", best_backfill / best_extract);
  fs::remove_all(work);
  return 0;
}

#pragma once
// What every route handler works with (internal to serve/): the gallery, the options,
// the embedders, the backfill runner, thumbnails and metrics.
#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "dualtune/gallery/gallery.h"
#include "dualtune/serve/backfill_runner.h"
#include "dualtune/serve/embedder_pool.h"
#include "dualtune/serve/metrics.h"
#include "dualtune/serve/service.h"
#include "dualtune/serve/thumbnails.h"

namespace dualtune::serve {

struct Context {
  Context(gallery::Gallery& g, EmbedderFactory f, ServiceOptions o);
  ~Context();
  /// The caller's gallery: every write (add, backfill, retire) goes through it.
  gallery::Gallery& writer;
  /// A second, read-only connection to the same gallery for searches and status: its
  /// lock on the SQLite connection is never held by a writer's commit, so searches do
  /// not wait for a backfill's transactions (WAL readers see each commit whole).
  std::unique_ptr<gallery::Gallery> reader;
  gallery::Gallery& gallery;  ///< = *reader
  ServiceOptions options;
  Embedders embedders;
  BackfillRunner backfill;
  Thumbnails thumbnails;
  Metrics metrics;
  std::string tmp_dir;  ///< private directory for uploaded query images (removed at exit)
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::atomic<bool> stopping{false};  ///< shutdown began: no new backfill starts

  /// The gallery's name for visitors: its directory's base name ("g" for /srv/data/g/).
  /// The page and the read routes show it instead of the server's file system.
  std::string name() const;
  /// `text` (an answer's message or a file it names) with the server's absolute paths
  /// replaced by names: the gallery directory by name(), the report directory, the
  /// curve's directory and the model files by their base names, the working directory
  /// and the upload directory dropped. Paths outside these are left as they are.
  std::string public_text(std::string text) const;
  /// report.json's directory ("" when there is none).
  std::string report_dir() const;
  /// curve.json's path ("" when there is none).
  std::string curve_file() const;
  /// The model named `name`: 404 naming the gallery's models when there is none.
  gallery::ModelInfo model(const std::string& name);
  /// The model for a query: `name`, or the rolling-out one (else deployed) when empty;
  /// 404 when unknown, 409 when retired.
  gallery::ModelInfo query_model(const std::string& name);
};

}  // namespace dualtune::serve

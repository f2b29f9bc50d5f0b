#pragma once
// `dualtune serve`: an HTTP service over one gallery directory (docs/API.md) and the web
// page that reads it. One handler per route (routes_*.cc), JSON errors {"error": "..."}
// with the right status, limits and the write token checked before any work.
// No libtorch here: images are embedded through gallery::ImageEmbedder (embedder_pool.h).
//
// Threading: requests run on a pool of `threads` workers; searches run side by side
// (Gallery::search is thread-safe), writes are serialised by the gallery, and at most one
// backfill runs, on its own thread (backfill_runner.h).
//
// A PostgreSQL server that is down or restarting makes the routes that need the store
// answer 503 {"error": "the gallery's database is unreachable: ..."} (password masked);
// the store reconnects at the next request, so the service recovers by itself.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "dualtune/gallery/gallery.h"
#include "dualtune/serve/embedder_pool.h"

namespace dualtune::serve {

/// Every request limit, refused with a 4xx JSON error before work starts.
struct Limits {
  int64_t max_body_bytes = int64_t(16) << 20;  ///< any request body (413)
  int64_t max_image_bytes = int64_t(8) << 20;  ///< an uploaded image (413)
  int64_t max_k = 1000;                        ///< results per query (400)
  int64_t max_queries = 256;                   ///< query vectors per search (413)
  int64_t max_add_items = 10000;               ///< items per add request (413)
  int64_t max_batch_size = 4096;               ///< backfill batch size (400)
  int64_t max_page = 500;                      ///< items per listing page (400)
  int64_t max_thumbnail = 512;                 ///< thumbnail side in pixels (400)
};

struct ServiceOptions {
  /// Bearer token of the write routes (token.h); "" = write routes are refused (403).
  std::string token;
  /// Directory of the models' compatibility report (report.json + plots/). "" = DIR/report.
  std::string report_dir;
  /// The backfill curve (curve.json of `gallery curve` or the demo). "" = the first of
  /// DIR/curve/curve.json and REPORT_DIR/transition/curve.json that exists.
  std::string curve_file;
  Limits limits;
  int threads = 8;  ///< HTTP worker threads
  /// Niceness (0-19) the backfill's thread, and the threads it starts (image decoding),
  /// add to the process's (capped at 19): searches and a backfill share the cores, and
  /// the scheduler gives a thread at nice 10 about a tenth of a nice-0 thread's share
  /// when both want a core, so the searches' tail latency is not set by the backfill.
  /// 0 = equal shares.
  int backfill_nice = 10;
  /// Searches hold and search only this shard's items (`serve --shard i/n`; a proxy,
  /// shard_proxy.h, merges the shards' answers). Default: every item.
  gallery::Shard shard;
  /// How stale searches may be on a store that announces its commits (PostgreSQL):
  /// a commit is searchable once its announcement arrives, and at the latest refresh_ms
  /// after it (gallery::OpenOptions::refresh_ms); 0 asks the store at every search.
  int64_t refresh_ms = 1000;
  /// One line per request and per event (start, shutdown); default: none.
  std::function<void(const std::string&)> log;
};

/// Makes BLAS run single-threaded in this process when it is OpenBLAS (found at run
/// time; false otherwise): a service's parallelism comes from concurrent requests, and
/// OpenBLAS's own threads would spin (sched_yield) against them on a few cores.
bool use_single_threaded_blas();

class Service {
 public:
  /// gallery must outlive the service. embedders: the model loader (may be empty: image
  /// routes and the backfill then answer 409).
  Service(gallery::Gallery& gallery, EmbedderFactory embedders, ServiceOptions options);
  ~Service();
  /// Binds host:port (port 0: a free port chosen by the system) and returns the port.
  /// Throws dualtune::Error when it cannot bind.
  int bind(const std::string& host, int port);
  /// Serves until shutdown(); then waits for the requests in flight and for the
  /// backfill to stop at its batch boundary, and writes the index caches.
  void run();
  /// Stops serving: no new connections; in-flight requests finish; a running backfill
  /// stops at its next batch boundary. Callable from any thread (a signal-waiting one),
  /// before or during run(), more than once.
  void shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dualtune::serve

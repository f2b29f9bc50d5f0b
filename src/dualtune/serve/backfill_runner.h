#pragma once
// The service's backfill: Gallery::backfill on a background thread, started and paused
// through the API, its progress readable at any time. Pausing (and SIGTERM) stores to
// the cancel flag that Gallery::backfill checks after each committed batch, so it stops
// at a batch boundary; a later start continues the stored plan with exactly the result
// of an uninterrupted run (gallery.h).
#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "dualtune/gallery/gallery.h"
#include "dualtune/serve/embedder_pool.h"

namespace dualtune::serve {

struct BackfillSnapshot {
  /// idle (never started) | running | pausing (stop requested, finishing its batch) |
  /// paused (stopped by pause or shutdown) | stopped (max_items / max_seconds reached) |
  /// rolled_back (the model was rolled back) | finished (nothing left in the plan) |
  /// failed (see error)
  std::string state = "idle";
  gallery::BackfillOptions options;    ///< of the current or last run (model resolved)
  gallery::BackfillProgress progress;  ///< latest progress of the current or last run
  bool has_report = false;
  gallery::BackfillReport report;      ///< of the last run that ended
  std::string error;                   ///< state failed: why
};

class BackfillRunner {
 public:
  /// nice: niceness the backfill thread adds to its own, at most 19 (ServiceOptions::backfill_nice).
  BackfillRunner(gallery::Gallery& gallery, EmbedderFactory factory, int nice = 0);
  ~BackfillRunner();
  /// Starts backfilling model m (options.model = m.name) in the background: 409 when a
  /// backfill is running, 500 when the model cannot be loaded.
  void start(const gallery::BackfillOptions& options, const gallery::ModelInfo& m);
  /// Asks the running backfill to stop at its next batch boundary; false when none runs.
  bool pause();
  BackfillSnapshot snapshot() const;
  /// Waits until no backfill runs.
  void wait();
  /// pause() + wait(): what shutdown does.
  void stop_and_join();

 private:
  void run(gallery::BackfillOptions options, gallery::ImageEmbedder* embedder);
  gallery::Gallery& gallery_;
  EmbedderFactory factory_;
  int nice_;
  std::map<std::string, std::unique_ptr<gallery::ImageEmbedder>> embedders_;  ///< by model, made once (start's thread)
  std::atomic<bool> cancel_{false};
  mutable std::mutex mu_;
  std::condition_variable ended_;
  bool running_ = false;
  BackfillSnapshot snap_;
  std::thread thread_;
};

}  // namespace dualtune::serve

#pragma once
// A backfill over several processes and machines: rank 0 is the only writer (it plans,
// embeds a share itself and commits every batch); ranks 1..W-1 embed their shares and
// stream the vectors to it over TCP. Workers never open the gallery database (which may
// sit on rank 0's local disk), so they only need the model file and the images.
//
// Set-up comes from the torchrun environment variables, as `train` reads them:
//   RANK, WORLD_SIZE        this process and the number of processes (unset: world 1)
//   MASTER_ADDR, MASTER_PORT  where rank 0 listens for the workers
//   DUALTUNE_DIST_TIMEOUT   seconds to wait for a worker to connect (and a worker for
//                           rank 0), default 60
//
// Protocol (one TCP connection per worker; frames are uint32 type, uint64 length,
// payload; integers little-endian):
//   worker -> rank 0  HELLO  {"rank": r}
//   rank 0 -> worker  WORK   {"model": path, "fingerprint": f, "dim": d,
//                             "batches": [{"index": b, "items": [[id, key, source], ...]}]}
//   worker -> rank 0  BATCH  uint64 header length | JSON {"index", "n", "errors"} |
//                            n int64 item ids | n × d float32 vectors      (one per batch)
//   worker -> rank 0  DONE   {}            or  ERROR {"error": message}
// Rank 0 stops the workers (budget reached, SIGTERM) by closing the connections; a
// worker that dies leaves its batches pending, and the next backfill resumes them.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "dualtune/gallery/gallery.h"

namespace dualtune::gallery {

struct BackfillRanks {
  int rank = 0, world = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;
  double timeout_seconds = 60;
  /// Reads the variables above; throws naming a malformed one. need_master = false: no
  /// MASTER_PORT needed (workers that claim batches from a PostgreSQL store never meet).
  static BackfillRanks from_env(bool need_master = true);
};

/// Rank 0's side: listens on master_port and hands out the shares (a RemoteWorkers for
/// Gallery::backfill). failures() names the workers that did not finish their share.
class TcpWorkers : public RemoteWorkers {
 public:
  explicit TcpWorkers(const BackfillRanks& ranks);
  ~TcpWorkers() override;
  int world() const override;
  void assign(int rank, const std::vector<BackfillBatch>& share, const ModelInfo& model) override;
  bool next(EmbeddedBatch& out, bool wait) override;
  void stop() override;
  /// "rank r: what happened", one per worker that failed.
  std::vector<std::string> failures() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// A worker rank's whole job: connect to rank 0, receive the share, embed it with
/// make_embedder(model path) and stream the vectors back. Returns normally when the
/// share is done or rank 0 closed the connection (it stopped the backfill); throws when
/// the model does not match the gallery's or rank 0 cannot be reached.
void backfill_worker(const BackfillRanks& ranks,
                     const std::function<std::unique_ptr<ImageEmbedder>(const std::string& model_path)>& make_embedder,
                     const std::atomic<bool>* cancel = nullptr);

}  // namespace dualtune::gallery

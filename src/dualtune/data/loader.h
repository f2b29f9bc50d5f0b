#pragma once
// Threaded batch loader: worker threads decode + augment samples into float CHW
// batches while the trainer computes. Order is deterministic for a given seed and
// epoch regardless of the number of workers (batch b is always the same items with
// the same augmentation draws). Torch-free: the trainer wraps Batch::images with
// torch::from_blob.
#include <cstdint>
#include <memory>
#include <vector>

#include "dualtune/data/dataset.h"
#include "dualtune/data/transforms.h"

namespace dualtune::data {

struct Batch {
  std::vector<float> images;  ///< n × c × h × w, row-major
  std::vector<int64_t> labels;
  std::vector<int64_t> cameras;
  std::vector<int64_t> indices;  ///< dataset indices of the items
  int64_t n = 0, c = 0, h = 0, w = 0;
};

struct LoaderOptions {
  int64_t batch_size = 128;
  bool shuffle = true;
  bool drop_last = false;
  std::string sampler = "random";  ///< random | pk
  int64_t p = 16, k = 4;           ///< P identities × K images per batch (sampler pk)
  int workers = 2;
  int prefetch = 4;                ///< batches ready ahead
  uint64_t seed = 0;
  int rank = 0, world_size = 1;    ///< each rank sees a disjoint shard of every epoch
};

class Loader {
 public:
  Loader(std::shared_ptr<const Dataset> dataset, TransformOptions transform, LoaderOptions options);
  ~Loader();
  /// Starts epoch `epoch` (the permutation and augmentation draws depend on seed+epoch).
  void start_epoch(int64_t epoch);
  /// Next batch of the epoch; false at the end. Rethrows worker errors (bad image).
  bool next(Batch& out);
  /// Batches per epoch for this rank.
  int64_t batches_per_epoch() const;
  /// Skips the first `n` batches of the current epoch without decoding them (resume).
  void skip(int64_t n);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dualtune::data

#pragma once
// Samplers: the batches of one epoch, as lists of dataset indices, for one rank.
// Deterministic in (seed, epoch): every rank computes the same global epoch and keeps
// its shard, so ranks never overlap and all ranks run the same number of steps (a rank
// with fewer batches would hang in the gradient all-reduce).
#include <cstddef>
#include <cstdint>
#include <vector>

namespace dualtune::data {

using BatchList = std::vector<std::vector<int64_t>>;

class Sampler {
 public:
  virtual ~Sampler() = default;
  /// This rank's batches for `epoch`.
  virtual BatchList batches(int64_t epoch) const = 0;
};

/// Every item once per epoch, in a seeded permutation (or in order when !shuffle).
/// Sharding as torch's DistributedSampler: the permutation is padded by wrapping
/// around (or, with drop_last, truncated) to a multiple of world_size and rank r takes
/// positions r, r + W, r + 2W, ...; then it is cut into batches of batch_size (the
/// last one smaller unless drop_last).
class RandomSampler : public Sampler {
 public:
  RandomSampler(std::size_t n, int64_t batch_size, bool shuffle, bool drop_last, uint64_t seed, int rank = 0,
                int world_size = 1);
  BatchList batches(int64_t epoch) const override;

 private:
  std::size_t n_;
  int64_t batch_size_;
  bool shuffle_, drop_last_;
  uint64_t seed_;
  int rank_, world_;
};

/// P x K identity sampler for batch-hard triplet losses: every batch holds P distinct
/// identities with K images each (identity after identity). Identities are drawn from a
/// reshuffled queue so all are visited evenly; an identity's images are drawn without
/// replacement from its reshuffled pool, or with replacement when it has fewer than K.
/// Items labelled -1 (junk) are never sampled. An epoch has max(1, floor(N / (P K)))
/// global batches (N = items with a label), rounded down to a multiple of world_size
/// (at least world_size); rank r takes batches r, r + W, ...
class PKSampler : public Sampler {
 public:
  /// @param labels the dataset's labels, one per item (-1 = junk)
  PKSampler(const std::vector<int64_t>& labels, int64_t p, int64_t k, uint64_t seed, int rank = 0,
            int world_size = 1);
  BatchList batches(int64_t epoch) const override;

 private:
  std::vector<std::vector<int64_t>> by_identity_;  ///< item indices per identity with items
  std::size_t valid_ = 0;
  int64_t p_, k_;
  uint64_t seed_;
  int rank_, world_;
};

}  // namespace dualtune::data

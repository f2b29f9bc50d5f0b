// Random and P x K samplers; contracts in sampler.h.
#include "dualtune/data/sampler.h"

#include <algorithm>
#include <map>

#include "dualtune/data/random.h"
#include "dualtune/util/error.h"

namespace dualtune::data {
namespace {

void check_shard(int rank, int world) {
  DT_CHECK(world >= 1 && rank >= 0 && rank < world, "sampler: expected 0 <= rank < world_size, found rank ", rank,
           ", world_size ", world);
}

constexpr uint64_t kSamplerStream = 0x5a4d504c45520000ull;  // "SAMPLER": keeps sampler draws apart from augmentation

}  // namespace

RandomSampler::RandomSampler(size_t n, int64_t batch_size, bool shuffle, bool drop_last, uint64_t seed, int rank,
                             int world_size)
    : n_(n), batch_size_(batch_size), shuffle_(shuffle), drop_last_(drop_last), seed_(seed), rank_(rank),
      world_(world_size) {
  DT_CHECK(batch_size >= 1, "random sampler: expected batch_size >= 1, found ", batch_size);
  check_shard(rank, world_size);
}

BatchList RandomSampler::batches(int64_t epoch) const {
  std::vector<int64_t> order(n_);
  for (size_t i = 0; i < n_; ++i) order[i] = static_cast<int64_t>(i);
  if (shuffle_) {
    std::mt19937_64 rng(derive_seed(seed_, kSamplerStream, static_cast<uint64_t>(epoch)));
    shuffle_portable(order, rng);
  }
  std::vector<int64_t> mine;
  if (world_ == 1) {
    mine = std::move(order);
  } else if (n_ > 0) {
    const size_t W = static_cast<size_t>(world_);
    const size_t total = drop_last_ ? n_ / W * W : (n_ + W - 1) / W * W;
    for (size_t pos = static_cast<size_t>(rank_); pos < total; pos += W) mine.push_back(order[pos % n_]);
  }
  BatchList out;
  const size_t bs = static_cast<size_t>(batch_size_);
  for (size_t b = 0; b < mine.size(); b += bs) {
    const size_t e = std::min(mine.size(), b + bs);
    if (drop_last_ && e - b < bs) break;
    out.emplace_back(mine.begin() + static_cast<std::ptrdiff_t>(b), mine.begin() + static_cast<std::ptrdiff_t>(e));
  }
  return out;
}

PKSampler::PKSampler(const std::vector<int64_t>& labels, int64_t p, int64_t k, uint64_t seed, int rank,
                     int world_size)
    : p_(p), k_(k), seed_(seed), rank_(rank), world_(world_size) {
  DT_CHECK(p >= 1 && k >= 1, "pk sampler: expected P >= 1 and K >= 1, found P=", p, ", K=", k);
  check_shard(rank, world_size);
  std::map<int64_t, std::vector<int64_t>> groups;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0) continue;
    groups[labels[i]].push_back(static_cast<int64_t>(i));
    ++valid_;
  }
  for (auto& g : groups) by_identity_.push_back(std::move(g.second));
  DT_CHECK(static_cast<int64_t>(by_identity_.size()) >= p, "pk sampler: expected at least P=", p,
           " identities with images, found ", by_identity_.size());
}

BatchList PKSampler::batches(int64_t epoch) const {
  std::mt19937_64 rng(derive_seed(seed_, kSamplerStream + 1, static_cast<uint64_t>(epoch)));
  const size_t ids = by_identity_.size();
  const size_t P = static_cast<size_t>(p_), K = static_cast<size_t>(k_), W = static_cast<size_t>(world_);
  size_t global = std::max<size_t>(1, valid_ / (P * K));
  global = std::max<size_t>(1, global / W) * W;

  std::vector<size_t> queue;
  size_t qpos = 0;
  std::vector<std::vector<int64_t>> pools(ids);
  std::vector<size_t> pool_pos(ids, 0);

  BatchList out;
  std::vector<char> in_batch(ids, 0);
  for (size_t b = 0; b < global; ++b) {
    std::vector<int64_t> batch;
    batch.reserve(P * K);
    std::vector<size_t> chosen;
    while (chosen.size() < P) {
      if (qpos >= queue.size()) {
        queue.resize(ids);
        for (size_t i = 0; i < ids; ++i) queue[i] = i;
        shuffle_portable(queue, rng);
        qpos = 0;
      }
      size_t j = qpos;
      while (j < queue.size() && in_batch[queue[j]]) ++j;
      if (j == queue.size()) {  // the rest of this round is already in the batch: new round
        qpos = queue.size();
        continue;
      }
      std::swap(queue[qpos], queue[j]);
      const size_t id = queue[qpos++];
      in_batch[id] = 1;
      chosen.push_back(id);

      const auto& items = by_identity_[id];
      if (items.size() < K) {
        for (size_t t = 0; t < K; ++t) batch.push_back(items[uniform_index(rng, items.size())]);
        continue;
      }
      auto& pool = pools[id];
      if (pool.empty() || pool_pos[id] + K > pool.size()) {
        pool = items;
        shuffle_portable(pool, rng);
        pool_pos[id] = 0;
      }
      for (size_t t = 0; t < K; ++t) batch.push_back(pool[pool_pos[id]++]);
    }
    for (size_t id : chosen) in_batch[id] = 0;
    if (b % W == static_cast<size_t>(rank_)) out.push_back(std::move(batch));
  }
  return out;
}

}  // namespace dualtune::data

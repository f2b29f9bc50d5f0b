#include <gtest/gtest.h>

#include <map>
#include <set>

#include "dualtune/data/sampler.h"
#include "dualtune/util/error.h"

using namespace dualtune::data;

namespace {

std::vector<int64_t> flatten(const BatchList& b) {
  std::vector<int64_t> out;
  for (const auto& x : b) out.insert(out.end(), x.begin(), x.end());
  return out;
}

// 12 identities with 1..12 images each, plus 5 junk items (-1) mixed in.
std::vector<int64_t> reid_labels() {
  std::vector<int64_t> l;
  for (int id = 0; id < 12; ++id) {
    for (int j = 0; j <= id; ++j) l.push_back(id);
    if (id % 3 == 0) l.push_back(-1);
  }
  return l;
}

}  // namespace

TEST(RandomSampler, CoversEveryIndexOncePerEpoch) {
  RandomSampler s(103, 10, true, false, 42);
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    const BatchList b = s.batches(epoch);
    ASSERT_EQ(b.size(), 11u);
    EXPECT_EQ(b.back().size(), 3u);
    std::vector<int64_t> all = flatten(b);
    std::sort(all.begin(), all.end());
    for (int64_t i = 0; i < 103; ++i) ASSERT_EQ(all[size_t(i)], i);
  }
  EXPECT_NE(flatten(s.batches(0)), flatten(s.batches(1)));  // reshuffled per epoch
  EXPECT_EQ(flatten(s.batches(1)), flatten(RandomSampler(103, 10, true, false, 42).batches(1)));
  EXPECT_NE(flatten(s.batches(0)), flatten(RandomSampler(103, 10, true, false, 43).batches(0)));
}

TEST(RandomSampler, InOrderAndDropLast) {
  const BatchList b = RandomSampler(7, 3, false, true, 0).batches(5);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0], (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(b[1], (std::vector<int64_t>{3, 4, 5}));
}

TEST(RandomSampler, ShardsAreDisjointAndCovering) {
  const int W = 3;
  std::vector<int64_t> all;
  size_t batches = 0;
  for (int r = 0; r < W; ++r) {
    const BatchList b = RandomSampler(60, 8, true, false, 9, r, W).batches(2);
    if (r == 0) batches = b.size();
    EXPECT_EQ(b.size(), batches);  // same number of steps on every rank
    const auto f = flatten(b);
    all.insert(all.end(), f.begin(), f.end());
  }
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), 60u);
  for (int64_t i = 0; i < 60; ++i) EXPECT_EQ(all[size_t(i)], i);
  // Uneven: 10 items on 3 ranks -> padded to 12, every rank 4 items.
  for (int r = 0; r < W; ++r) EXPECT_EQ(flatten(RandomSampler(10, 2, true, false, 1, r, W).batches(0)).size(), 4u);
  EXPECT_THROW(RandomSampler(10, 2, true, false, 1, 3, 3), dualtune::Error);
}

TEST(PKSampler, EveryBatchHasPDistinctIdsTimesK) {
  const auto labels = reid_labels();
  const int64_t P = 4, K = 3;
  PKSampler s(labels, P, K, 5);
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    const BatchList bl = s.batches(epoch);
    ASSERT_EQ(bl.size(), size_t(78 / (P * K)));  // 78 labelled items
    for (const auto& b : bl) {
      ASSERT_EQ(b.size(), size_t(P * K));
      std::map<int64_t, int> per_id;
      for (size_t j = 0; j < b.size(); ++j) {
        const int64_t l = labels[size_t(b[j])];
        ASSERT_GE(l, 0) << "junk sampled";
        EXPECT_EQ(l, labels[size_t(b[j / K * K])]) << "identities are contiguous blocks of K";
        ++per_id[l];
      }
      EXPECT_EQ(per_id.size(), size_t(P));
      for (const auto& [id, n] : per_id) EXPECT_EQ(n, K);
      // identities with >= K images are sampled without replacement within the batch
      for (size_t blk = 0; blk < b.size(); blk += K) {
        const int64_t id = labels[size_t(b[blk])];
        if (id + 1 >= K) {
          std::set<int64_t> distinct(b.begin() + long(blk), b.begin() + long(blk + K));
          EXPECT_EQ(distinct.size(), size_t(K));
        }
      }
    }
  }
  EXPECT_EQ(s.batches(1), PKSampler(labels, P, K, 5).batches(1));
  EXPECT_NE(s.batches(0), s.batches(1));
}

TEST(PKSampler, VisitsAllIdentitiesAndShards) {
  const auto labels = reid_labels();
  PKSampler s(labels, 3, 2, 0);
  std::set<int64_t> seen;
  for (const auto& b : s.batches(0))
    for (int64_t i : b) seen.insert(labels[size_t(i)]);
  EXPECT_EQ(seen.size(), 12u);  // 13 batches x 3 ids cycle through all 12 identities

  const BatchList global = PKSampler(labels, 3, 2, 0, 0, 1).batches(4);
  const BatchList r0 = PKSampler(labels, 3, 2, 0, 0, 2).batches(4);
  const BatchList r1 = PKSampler(labels, 3, 2, 0, 1, 2).batches(4);
  EXPECT_EQ(r0.size(), r1.size());
  ASSERT_EQ(r0.size() + r1.size(), global.size() / 2 * 2);
  for (size_t i = 0; i < r0.size(); ++i) {
    EXPECT_EQ(r0[i], global[2 * i]);
    EXPECT_EQ(r1[i], global[2 * i + 1]);
  }
}

TEST(PKSampler, TooFewIdentitiesIsAnError) {
  EXPECT_THROW(PKSampler(std::vector<int64_t>{0, 0, 1, -1}, 3, 2, 0), dualtune::Error);
}

#pragma once
// Helpers of the sharded-search and PostgreSQL-reader tests: a gallery in transition
// built from imported vectors (no images: the vectors are drawn around class centres, so
// a calibration can be fitted), and a ShardProxy run on its own thread.
#include <gtest/gtest.h>
#include <httplib.h>

#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dualtune/gallery/gallery.h"
#include "dualtune/serve/shard_proxy.h"
#include "serve_fixtures.h"

namespace dualtune::serve::testing {

/// Vectors of n items of `classes` classes (item i has class i % classes): class centre
/// + noise of deviation `noise`, dim (<= 64) components. The centres are the same for
/// every call (the first dim of 64 seeded components), so vectors of two dimensions
/// agree on their common prefix, as two compatible models' do; `seed` draws the noise.
inline std::vector<float> class_vectors(int64_t n, int64_t dim, int64_t classes, float noise, uint64_t seed) {
  std::mt19937_64 centre_rng(12345), rng(seed);
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> centre(static_cast<size_t>(classes * 64));
  for (auto& x : centre) x = g(centre_rng);
  std::vector<float> v(static_cast<size_t>(n * dim));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < dim; ++c)
      v[static_cast<size_t>(i * dim + c)] = centre[static_cast<size_t>((i % classes) * 64 + c)] + noise * g(rng);
  return v;
}

/// A gallery at `where` in the middle of a transition: n items with "old" (dim 16,
/// deployed) vectors; "new" (dim 24) rolling out with vectors for the items i % 5 < 2
/// (40 %), and both score calibrations fitted on the items' own vectors, so the default
/// merge is calibrated. Item keys are "item<i>", labels "c<i % classes>".
inline std::unique_ptr<gallery::Gallery> imported_transition(const std::string& where, int64_t n, int64_t classes = 20) {
  auto g = gallery::Gallery::create(where, {"old", 16, "", ""});
  const auto old_v = class_vectors(n, 16, classes, 0.8f, 1);
  const auto new_v = class_vectors(n, 24, classes, 0.5f, 2);
  std::vector<gallery::ItemRecord> items;
  for (int64_t i = 0; i < n; ++i) items.push_back({"item" + std::to_string(i), "c" + std::to_string(i % classes), -1, 0});
  EXPECT_EQ(g->import_vectors("old", items, 16, old_v.data(), false).added, n);
  g->rollout({"new", 24, "", ""});
  std::vector<gallery::ItemRecord> part;
  std::vector<float> part_v;
  for (int64_t i = 0; i < n; ++i) {
    if (i % 5 >= 2) continue;
    part.push_back(items[static_cast<size_t>(i)]);
    part_v.insert(part_v.end(), new_v.begin() + i * 24, new_v.begin() + (i + 1) * 24);
  }
  EXPECT_EQ(g->import_vectors("new", part, 24, part_v.data(), false).vectors, static_cast<int64_t>(part.size()));
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < n; ++i) labels.push_back(i % classes);
  g->fit_transition("new", n, old_v.data(), new_v.data(), labels.data());
  return g;
}

/// A ShardProxy on 127.0.0.1:<free port>, run on its own thread until destroyed.
class TestProxy : public Loopback<ShardProxy> {
 public:
  explicit TestProxy(ProxyOptions o) : Loopback<ShardProxy>(std::move(o)) {}
};

}  // namespace dualtune::serve::testing

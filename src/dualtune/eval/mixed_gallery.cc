#include "dualtune/eval/mixed_gallery.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "dualtune/util/error.h"

namespace dualtune::eval {

std::vector<int64_t> old_item_order(int64_t n, uint64_t seed) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  for (int64_t i = n - 1; i > 0; --i) {
    // Unbiased j in [0, i] by rejection (std::uniform_int_distribution is not portable).
    const uint64_t range = static_cast<uint64_t>(i) + 1;
    const uint64_t limit = rng.max() - (rng.max() % range);
    uint64_t x;
    do x = rng(); while (x >= limit);
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(x % range)]);
  }
  return order;
}

int64_t old_item_count(int64_t n, double r) {
  DT_CHECK(r >= 0 && r <= 1, "mixed gallery: expected a fraction of old items in [0, 1], found ", r);
  return std::llround(r * double(n));
}

features::FeatureSet mixed_gallery(const features::FeatureSet& new_gallery, const features::FeatureSet& old_gallery,
                                   double r, uint64_t seed) {
  DT_CHECK(new_gallery.n == old_gallery.n, "mixed gallery: expected the new and old galleries to hold the same items, ",
           "found ", new_gallery.n, " new vs ", old_gallery.n, " old");
  DT_CHECK(new_gallery.labels == old_gallery.labels,
           "mixed gallery: expected identical labels in the new and old galleries (same items, same order)");
  DT_CHECK(new_gallery.cams == old_gallery.cams,
           "mixed gallery: expected identical cams in the new and old galleries (same items, same order)");
  const int64_t n = new_gallery.n;
  const int64_t num_old = old_item_count(n, r);
  if (num_old == 0) return new_gallery;
  if (num_old == n) return old_gallery;
  const int64_t d = std::min(new_gallery.d, old_gallery.d);
  std::vector<char> is_old(static_cast<size_t>(n), 0);
  const std::vector<int64_t> order = old_item_order(n, seed);
  for (int64_t t = 0; t < num_old; ++t) is_old[static_cast<size_t>(order[t])] = 1;
  features::FeatureSet out = new_gallery;
  out.d = d;
  out.features.assign(static_cast<size_t>(n * d), 0.f);
  for (int64_t i = 0; i < n; ++i) {
    const features::FeatureSet& src = is_old[i] ? old_gallery : new_gallery;
    std::copy_n(src.features.data() + i * src.d, d, out.features.data() + i * d);
  }
  return out;
}

features::FeatureSet generations_gallery(const std::vector<const features::FeatureSet*>& generations,
                                         const std::vector<double>& fractions, uint64_t seed) {
  DT_CHECK(!generations.empty() && generations.size() == fractions.size(), "generations gallery: expected one fraction "
           "per generation, found ", generations.size(), " generations and ", fractions.size(), " fractions");
  double total = 0;
  for (double f : fractions) {
    DT_CHECK(f >= 0 && f <= 1, "generations gallery: expected fractions in [0, 1], found ", f);
    total += f;
  }
  DT_CHECK(std::abs(total - 1.0) < 1e-9, "generations gallery: expected fractions summing to 1, found ", total);
  const features::FeatureSet& first = *generations.front();
  const int64_t n = first.n;
  int64_t d = -1;
  for (size_t g = 0; g < generations.size(); ++g) {
    const auto& gen = *generations[g];
    DT_CHECK(gen.n == n && gen.labels == first.labels && gen.cams == first.cams, "generations gallery: generation ", g,
             " must hold the same items (same n, labels and cams, same order) as generation 0");
    if (fractions[g] > 0) d = d < 0 ? gen.d : std::min(d, gen.d);
  }
  const std::vector<int64_t> order = old_item_order(n, seed);
  features::FeatureSet out = first;
  out.d = d;
  out.features.assign(static_cast<size_t>(n * d), 0.f);
  double cumulative = 0;
  int64_t t0 = 0;
  for (size_t g = 0; g < generations.size(); ++g) {
    cumulative += fractions[g];
    const int64_t t1 = g + 1 == generations.size() ? n : std::min<int64_t>(n, std::llround(cumulative * double(n)));
    const auto& src = *generations[g];
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t i = order[static_cast<size_t>(t)];
      std::copy_n(src.features.data() + i * src.d, d, out.features.data() + i * d);
    }
    t0 = std::max(t0, t1);
  }
  return out;
}

std::vector<double> parse_fractions(const std::string& csv) {
  std::vector<double> out;
  size_t start = 0;
  while (start <= csv.size()) {
    size_t end = csv.find(',', start);
    if (end == std::string::npos) end = csv.size();
    const std::string item = csv.substr(start, end - start);
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    DT_CHECK(used > 0 && used == item.size() && v >= 0 && v <= 1,
             "--mixed: expected comma-separated fractions in [0, 1], found '", item, "'");
    out.push_back(v);
    start = end + 1;
  }
  return out;
}

}  // namespace dualtune::eval

#pragma once
// Mixed galleries: during a progressive backfill a fraction r of the gallery still
// holds old-model features. Item order[t] of a seeded permutation is old for every r
// with t < round(r·n), so the old items for r = 0.25 are a subset of those for 0.5,
// and so on. r = 0 is exactly the new gallery, r = 1 exactly the old one; in between,
// when Do != Dn, every row keeps its first min(Do, Dn) components.
#include <cstdint>
#include <string>
#include <vector>

#include "dualtune/features/feature_set.h"

namespace dualtune::eval {

/// Parses "0,0.25,0.5" into fractions in [0, 1]; throws naming the bad entry.
std::vector<double> parse_fractions(const std::string& csv);

/// Seeded permutation of 0..n-1 (Fisher–Yates on mt19937_64, identical on every platform).
std::vector<int64_t> old_item_order(int64_t n, uint64_t seed);

/// round(r·n): the number of old items for fraction r in [0, 1].
int64_t old_item_count(int64_t n, double r);

/// The gallery with fraction r of old features. new_gallery and old_gallery must be
/// the same items (same n, labels and cams), features from the two models.
features::FeatureSet mixed_gallery(const features::FeatureSet& new_gallery, const features::FeatureSet& old_gallery,
                                   double r, uint64_t seed);

/// A gallery holding several generations at once (a chain v1 → v2 → v3 whose gallery
/// still has v1 embeddings when v3 ships). generations[g] are the same items embedded by
/// generation g; fractions[g] >= 0 sum to 1. With F_g the cumulative fractions, item
/// order[t] (old_item_order) takes generation g's row for round(F_{g-1}·n) <= t <
/// round(F_g·n), so the counts add up to n exactly and two generations reduce to
/// mixed_gallery (generations {old, new}, fractions {r, 1 − r}). Every row keeps the
/// first min(d) components over the generations that hold items.
features::FeatureSet generations_gallery(const std::vector<const features::FeatureSet*>& generations,
                                         const std::vector<double>& fractions, uint64_t seed);

}  // namespace dualtune::eval

#pragma once
// A hand-built 2-D feature set for the leave-one-out tests (no cameras, no class names).
#include <cstdint>
#include <utility>
#include <vector>

#include "dualtune/features/feature_set.h"

namespace dualtune_test {

/// n = labels.size() items of dimension 2; f holds them row by row.
inline dualtune::features::FeatureSet feature_set_2d(std::vector<float> f, std::vector<int64_t> labels) {
  dualtune::features::FeatureSet s;
  s.n = static_cast<int64_t>(labels.size());
  s.d = 2;
  s.features = std::move(f);
  s.labels = std::move(labels);
  s.cams.assign(static_cast<size_t>(s.n), -1);
  return s;
}

}  // namespace dualtune_test

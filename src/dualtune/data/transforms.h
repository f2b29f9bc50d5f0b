#pragma once
// Image transforms: uint8 HWC Image -> float CHW, in this order:
// resize (if size differs) -> pad+random crop -> horizontal flip -> to float
// [0,1] -> normalize ((x - mean) / std per channel) -> random erasing.
// Randomness comes from the caller's generator so loading is reproducible.
#include <cstdint>
#include <random>
#include <vector>

#include "dualtune/data/dataset.h"

namespace dualtune::data {

struct TransformOptions {
  int64_t height = 28, width = 28, channels = 1;
  std::vector<float> mean{0.2860f};
  std::vector<float> std{0.3530f};
  bool train = false;     ///< false: test-time transform (resize + normalize only)
  bool flip = true;       ///< p = 0.5 horizontal flip (train only)
  int64_t pad = 0;        ///< pad by `pad` zeros then random crop back (train only)
  float erasing = 0.0f;   ///< probability of random erasing (train only)
};

/// Writes channels*height*width floats to out. Throws on channel mismatch that cannot be
/// converted (gray<->RGB is converted).
void apply_transform(const Image& img, const TransformOptions& opt, std::mt19937_64& rng, float* out);

}  // namespace dualtune::data

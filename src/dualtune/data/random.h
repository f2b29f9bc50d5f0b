#pragma once
// Portable randomness for data loading. std::uniform_*_distribution and std::shuffle
// are implementation-defined, so the same seed would give different epochs under
// libstdc++ and libc++; these helpers use only the raw mt19937_64 stream, which the
// standard fixes bit for bit.
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace dualtune::data {

/// SplitMix64 finaliser: decorrelates nearby seeds.
inline uint64_t mix_seed(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/// Seed for a stream identified by (seed, a, b), e.g. (seed, epoch, batch).
inline uint64_t derive_seed(uint64_t seed, uint64_t a, uint64_t b = 0) {
  return mix_seed(mix_seed(mix_seed(seed) ^ a) ^ b);
}

/// Uniform integer in [0, n), n >= 1 (rejection sampling, unbiased).
inline uint64_t uniform_index(std::mt19937_64& rng, uint64_t n) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t r;
  do r = rng(); while (r >= limit);
  return r % n;
}

/// Uniform double in [0, 1).
inline double uniform01(std::mt19937_64& rng) { return double(rng() >> 11) * (1.0 / 9007199254740992.0); }

/// Fisher-Yates shuffle.
template <class T>
void shuffle_portable(std::vector<T>& v, std::mt19937_64& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[uniform_index(rng, i)]);
}

}  // namespace dualtune::data

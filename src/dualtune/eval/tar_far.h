#pragma once
// Verification: TAR@FAR over query×gallery pairs (genuine = same label).
// For a FAR target f over N impostor scores, the threshold t is the k-th largest
// impostor score with k = floor(f·N) + 1; a pair is accepted iff score > t, so
// FAR(t) = #{impostor > t} / N <= (k-1)/N <= f, and no lower impostor score keeps
// FAR <= f. TAR = #{genuine > t} / #genuine.
//
// Exact with memory independent of N, by counting instead of storing scores. Every
// float maps to an order-preserving 32-bit key (score_key); a coarse bin is the top 16
// bits of a key. A pass over the pairs counts, for each of up to three windows of
// consecutive coarse bins, the pairs above the window and every key inside it (one
// counter per distinct float value). If the k-th largest impostor falls inside a
// window, t and #{genuine > t} follow exactly. Windows are placed from a sample of the
// pairs counted in a coarse histogram (a "survey" pass); a threshold outside every
// window costs a survey of all pairs (which finds its bin) and a pass with a window on
// that bin (resolve_tar_far).
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "dualtune/eval/ranking.h"

namespace dualtune::eval {

/// The FAR targets reported: 1e-4, 1e-3, 1e-2.
inline constexpr double kFarTargets[3] = {1e-4, 1e-3, 1e-2};

/// k = floor(far·num_impostors) + 1: the threshold is the k-th largest impostor score.
int64_t far_threshold_rank(double far, int64_t num_impostors);

/// Order-preserving key: a < b ⇔ score_key(a) < score_key(b) for non-NaN floats; -0 and
/// +0 share a key; NaN gets the lowest key (never above a threshold).
inline uint32_t score_key(float s) {
  if (s != s) return 0;
  s += 0.0f;  // -0 -> +0
  uint32_t u;
  __builtin_memcpy(&u, &s, sizeof u);
  // negative: all bits flipped; positive: sign bit set. Branch-free.
  return u ^ (static_cast<uint32_t>(static_cast<int32_t>(u) >> 31) | 0x80000000u);
}
/// Inverse of score_key (for keys of non-NaN floats).
float key_score(uint32_t key);

inline constexpr uint32_t kCoarseBins = 1u << 16;

/// Per FAR target, the coarse bins [first, first + count) counted exactly. All counts 0:
/// a survey (coarse histogram of every pair).
struct TarFarWindows {
  std::array<uint32_t, 3> first{0, 0, 0};
  std::array<uint32_t, 3> count{0, 0, 0};
  bool survey() const { return count[0] == 0 && count[1] == 0 && count[2] == 0; }
};

struct TarFarResult {
  double tar[3];        ///< TAR per target of kFarTargets (NaN: no genuine or no impostor pairs)
  double threshold[3];  ///< t per target (NaN without impostors)
  bool resolved[3];     ///< false: t was outside every window (or this was a survey)
  bool bin_known[3];    ///< survey: bin[i] is the coarse bin holding t
  uint32_t bin[3];
};

/// Exact per-key counts [impostor, genuine] of keys lo + [0, width), in pages of 256
/// keys allocated on first use: few pairs in a window cost few pages.
class KeyCounts {
 public:
  static constexpr uint32_t kPageBits = 8, kPageKeys = 1u << kPageBits;
  explicit KeyCounts(uint32_t width = 0) : pages_((size_t(width) + kPageKeys - 1) >> kPageBits) {}
  void add(uint32_t off, bool genuine) {
    auto& page = pages_[off >> kPageBits];
    if (!page) page.reset(new uint64_t[2 * kPageKeys]());
    ++page[2 * (off & (kPageKeys - 1)) + genuine];
  }
  /// Count of key lo + off (0 if never counted).
  uint64_t get(uint32_t off, bool genuine) const {
    const auto& page = pages_[off >> kPageBits];
    return page ? page[2 * (off & (kPageKeys - 1)) + genuine] : 0;
  }
  bool page_used(uint32_t page) const { return pages_[page] != nullptr; }
  uint32_t num_pages() const { return static_cast<uint32_t>(pages_.size()); }
  void merge(const KeyCounts& other);

 private:
  std::vector<std::unique_ptr<uint64_t[]>> pages_;
};

/// Counts of one pass (one per thread, merged). Memory: survey 1 MiB; windows 4 KiB per
/// 256 consecutive keys that received a pair (at most 1 MiB per window bin).
class TarFarCounter {
 public:
  explicit TarFarCounter(const TarFarWindows& windows = {});
  TarFarCounter(TarFarCounter&&) = default;
  TarFarCounter& operator=(TarFarCounter&&) = default;

  /// Adds the pairs of one query: gallery items with role kPositive (genuine) or
  /// kNegative (impostor); excluded ones are skipped. scores, roles: size ng.
  void add_row(int64_t ng, const float* scores, const Role* roles);
  void add(float s, bool genuine);
  /// Adds other's counts (same windows).
  void merge(const TarFarCounter& other);

  /// TAR@FAR for kFarTargets, once every pair has been added.
  TarFarResult resolve() const;
  /// For a survey of a sample of the pairs: windows of `bins` coarse bins centred on
  /// each target's threshold bin in the sample.
  TarFarWindows predict_windows(uint32_t bins) const;

  int64_t num_impostors() const { return num_[0]; }
  int64_t num_genuine() const { return num_[1]; }

 private:
  TarFarWindows windows_;
  uint32_t lo_[3], width_[3];        ///< key range [lo, lo + width) of each window
  uint64_t above_[3][2] = {};        ///< per window: [impostor|genuine] pairs with key >= lo + width
  std::vector<uint64_t> coarse_[2];  ///< survey: [impostor|genuine][coarse bin]
  KeyCounts fine_[3];                ///< per window, by key − lo
  int64_t num_[2] = {0, 0};
};

/// Windows from a survey of a sample taken in parts (interleaved subsets of the sampled
/// queries; the parts' counts together are the sample's). Each target's window spans the
/// bins where the whole sample and each part put its threshold, one more bin on either
/// side: the parts, each a quarter of the sample, disagree by about twice as much as the
/// whole sample errs, so where the sample is unsure the window widens instead of missing
/// (a miss costs two more passes over every pair, resolve_tar_far). At least `min_bins`,
/// at most `max_bins` wide, always holding the whole sample's bin.
TarFarWindows predict_windows(const std::vector<TarFarCounter>& parts, uint32_t min_bins, uint32_t max_bins);

/// Exact TAR@FAR from `first`, the counts of a whole pass; when a threshold fell outside
/// its windows, runs `pass` (which must add every pair once, exactly as before, to a
/// counter with the windows it is given and return it) for a survey and then for a
/// window on the threshold's bin. `passes`, when given, receives the extra pass count.
TarFarResult resolve_tar_far(const TarFarCounter& first,
                             const std::function<TarFarCounter(const TarFarWindows&)>& pass, int* passes = nullptr);

}  // namespace dualtune::eval

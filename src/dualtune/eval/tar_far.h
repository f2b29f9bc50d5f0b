#pragma once
// Verification: TAR@FAR over query×gallery pairs (genuine = same label).
// For a FAR target f over N impostor scores, the threshold t is the k-th largest
// impostor score with k = floor(f·N) + 1; a pair is accepted iff score > t, so
// FAR(t) = #{impostor > t} / N <= (k-1)/N <= f, and no lower impostor score keeps
// FAR <= f. TAR = #{genuine > t} / #genuine.
// Streamed: only the `keep` largest impostor scores (keep = floor(f_max·N) + 1) and the
// genuine scores above the current k-th largest impostor are stored.
#include <cstdint>
#include <vector>

namespace dualtune::eval {

/// The FAR targets reported: 1e-4, 1e-3, 1e-2.
inline constexpr double kFarTargets[3] = {1e-4, 1e-3, 1e-2};

/// Number of largest impostor scores needed for FAR targets up to max_far over
/// num_impostors scores: floor(max_far·num_impostors) + 1.
int64_t impostors_to_keep(double max_far, int64_t num_impostors);

class TarFarAccumulator {
 public:
  /// keep: how many of the largest impostor scores to retain (impostors_to_keep).
  explicit TarFarAccumulator(int64_t keep = 1);

  void add_impostor(float s) {
    ++num_impostors_;
    if (s > floor_) {
      top_impostors_.push_back(s);
      if (static_cast<int64_t>(top_impostors_.size()) >= 2 * keep_ + 1024) prune();
    }
  }
  void add_genuine(float s) {
    ++num_genuine_;
    if (s > floor_) genuine_.push_back(s);
  }
  /// Adds other's pairs (per-thread accumulators merged at the end).
  void merge(const TarFarAccumulator& other);

  /// TAR at FAR target far (<= the max_far used for keep); NaN when there are no
  /// genuine or no impostor pairs.
  double tar_at_far(double far) const;
  /// Score threshold chosen for far (NaN without impostors).
  double threshold_at_far(double far) const;

  int64_t num_impostors() const { return num_impostors_; }
  int64_t num_genuine() const { return num_genuine_; }

 private:
  void prune();

  int64_t keep_;
  float floor_;  ///< every stored impostor is > floor_; floor_ <= the final thresholds
  int64_t num_impostors_ = 0, num_genuine_ = 0;
  std::vector<float> top_impostors_;
  std::vector<float> genuine_;
};

}  // namespace dualtune::eval

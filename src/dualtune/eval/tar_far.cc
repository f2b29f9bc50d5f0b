#include "dualtune/eval/tar_far.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "dualtune/util/error.h"

namespace dualtune::eval {

int64_t impostors_to_keep(double max_far, int64_t num_impostors) {
  DT_CHECK(max_far >= 0 && max_far < 1, "TAR@FAR: expected a FAR target in [0, 1), found ", max_far);
  return static_cast<int64_t>(std::floor(max_far * double(num_impostors))) + 1;
}

TarFarAccumulator::TarFarAccumulator(int64_t keep)
    : keep_(std::max<int64_t>(1, keep)), floor_(-std::numeric_limits<float>::infinity()) {}

void TarFarAccumulator::prune() {
  if (static_cast<int64_t>(top_impostors_.size()) <= keep_) return;
  // Keep the keep_ largest; the smallest of them becomes the floor: a later score
  // <= floor_ can change neither the keep_ largest values nor any TAR.
  std::nth_element(top_impostors_.begin(), top_impostors_.begin() + (keep_ - 1), top_impostors_.end(),
                   std::greater<float>());
  top_impostors_.resize(static_cast<size_t>(keep_));
  floor_ = *std::min_element(top_impostors_.begin(), top_impostors_.end());
  genuine_.erase(std::remove_if(genuine_.begin(), genuine_.end(), [&](float s) { return s <= floor_; }),
                 genuine_.end());
}

void TarFarAccumulator::merge(const TarFarAccumulator& other) {
  num_impostors_ += other.num_impostors_;
  num_genuine_ += other.num_genuine_;
  keep_ = std::max(keep_, other.keep_);
  // Each side holds a superset of its keep largest impostor scores (by value), so the
  // keep largest of the union are among them; each side's genuines dropped so far
  // were <= its floor <= the final thresholds.
  top_impostors_.insert(top_impostors_.end(), other.top_impostors_.begin(), other.top_impostors_.end());
  genuine_.insert(genuine_.end(), other.genuine_.begin(), other.genuine_.end());
  floor_ = std::max(floor_, other.floor_);
  prune();
}

double TarFarAccumulator::threshold_at_far(double far) const {
  if (num_impostors_ == 0) return std::nan("");
  const int64_t k = impostors_to_keep(far, num_impostors_);
  DT_CHECK(k <= keep_, "TAR@FAR: FAR target ", far, " needs the ", k, " largest impostor scores, only ", keep_,
           " were kept");
  DT_CHECK(k <= static_cast<int64_t>(top_impostors_.size()), "TAR@FAR: internal error: expected at least ", k,
           " stored impostor scores, found ", top_impostors_.size());
  std::vector<float> top(top_impostors_);
  std::nth_element(top.begin(), top.begin() + (k - 1), top.end(), std::greater<float>());
  return top[static_cast<size_t>(k - 1)];
}

double TarFarAccumulator::tar_at_far(double far) const {
  if (num_impostors_ == 0 || num_genuine_ == 0) return std::nan("");
  const double t = threshold_at_far(far);
  const auto accepted = std::count_if(genuine_.begin(), genuine_.end(), [&](float s) { return s > t; });
  return double(accepted) / double(num_genuine_);
}

}  // namespace dualtune::eval

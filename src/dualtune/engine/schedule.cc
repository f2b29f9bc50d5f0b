#include "dualtune/engine/schedule.h"

#include <cmath>

namespace dualtune::engine {

double learning_rate(const std::string& schedule, double lr, int64_t it, int64_t total, int64_t warmup_iters,
                     int64_t iters_per_epoch, const std::vector<int64_t>& milestones, double gamma) {
  if (it < warmup_iters) return lr * static_cast<double>(it + 1) / static_cast<double>(warmup_iters);
  if (schedule == "cosine") {
    const double t = static_cast<double>(it - warmup_iters) / static_cast<double>(std::max<int64_t>(1, total - warmup_iters));
    return lr * 0.5 * (1.0 + std::cos(M_PI * t));
  }
  if (schedule == "multistep") {
    const int64_t epoch = it / std::max<int64_t>(1, iters_per_epoch);
    double out = lr;
    for (auto m : milestones)
      if (epoch >= m) out *= gamma;
    return out;
  }
  return lr;
}

}  // namespace dualtune::engine

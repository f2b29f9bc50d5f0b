#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dualtune::engine {

/// Learning rate at iteration `it` of `total` (it in [0, total)):
///   warmup (linear from lr/warmup_iters to lr over warmup_iters), then
///   cosine:    lr · ½(1 + cos(π · t)), t = (it − warmup) / (total − warmup)
///   multistep: lr · γ^(number of milestones (epochs) ≤ it / iters_per_epoch)
///   constant:  lr
double learning_rate(const std::string& schedule, double lr, int64_t it, int64_t total, int64_t warmup_iters,
                     int64_t iters_per_epoch, const std::vector<int64_t>& milestones, double gamma);

}  // namespace dualtune::engine

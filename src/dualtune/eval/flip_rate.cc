#include "dualtune/eval/flip_rate.h"

#include <cmath>

#include "dualtune/util/error.h"

namespace dualtune::eval {

std::vector<Top1> top1_outcomes(const std::vector<int64_t>& first_rank) {
  std::vector<Top1> out(first_rank.size());
  for (size_t i = 0; i < first_rank.size(); ++i) {
    out[i] = first_rank[i] <= 0 ? Top1::kSkipped : (first_rank[i] == 1 ? Top1::kRight : Top1::kWrong);
  }
  return out;
}

FlipRates flip_rates(const std::vector<Top1>& before, const std::vector<Top1>& after) {
  DT_CHECK(before.size() == after.size(), "flip rates: expected the same queries before and after the upgrade, found ",
           before.size(), " queries before and ", after.size(), " after");
  FlipRates f;
  for (size_t i = 0; i < before.size(); ++i) {
    if (before[i] == Top1::kSkipped || after[i] == Top1::kSkipped) continue;
    ++f.queries;
    f.negative_flips += before[i] == Top1::kRight && after[i] == Top1::kWrong;
    f.positive_flips += before[i] == Top1::kWrong && after[i] == Top1::kRight;
  }
  if (f.queries == 0) {
    f.negative = f.positive = std::nan("");
  } else {
    f.negative = static_cast<double>(f.negative_flips) / static_cast<double>(f.queries);
    f.positive = static_cast<double>(f.positive_flips) / static_cast<double>(f.queries);
  }
  return f;
}

}  // namespace dualtune::eval

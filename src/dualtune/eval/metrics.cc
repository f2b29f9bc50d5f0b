#include "dualtune/eval/metrics.h"

#include <cmath>

namespace dualtune::eval {

Metrics reduce_query_results(const QueryResults& r) {
  Metrics m;
  std::vector<int64_t> hits(kCmcRanks, 0);
  double ap = 0, inp = 0;
  for (size_t i = 0; i < r.first_rank.size(); ++i) {
    if (r.first_rank[i] <= 0) {
      ++m.skipped;
      continue;
    }
    ++m.queries;
    ap += r.ap[i];
    inp += r.inp[i];
    if (r.first_rank[i] <= kCmcRanks) ++hits[static_cast<size_t>(r.first_rank[i] - 1)];
  }
  m.cmc.assign(kCmcRanks, 0);
  if (m.queries == 0) {
    m.map = m.minp = m.rank1 = m.rank5 = m.rank10 = std::nan("");
    for (auto& c : m.cmc) c = std::nan("");
    return m;
  }
  int64_t cum = 0;
  for (int k = 0; k < kCmcRanks; ++k) {
    cum += hits[k];
    m.cmc[k] = double(cum) / double(m.queries);
  }
  m.map = ap / double(m.queries);
  m.minp = inp / double(m.queries);
  m.rank1 = m.cmc[0];
  m.rank5 = m.cmc[4];
  m.rank10 = m.cmc[9];
  return m;
}

}  // namespace dualtune::eval

#include "dualtune/eval/verdict.h"

#include <cmath>

namespace dualtune::eval {

Verdict judge_compatibility(double old_old, double new_new, double new_old) {
  Verdict v;
  v.old_old = old_old;
  v.new_new = new_new;
  v.new_old = new_old;
  v.compatible = new_old > old_old;
  const double denom = new_new - old_old;
  v.gain = std::fabs(denom) < 1e-12 ? std::nan("") : (new_old - old_old) / denom;
  return v;
}

}  // namespace dualtune::eval

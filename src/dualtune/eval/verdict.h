#pragma once
// The empirical compatibility criterion (Shen et al., BCT) and the update gain.
#include <string>

namespace dualtune::eval {

struct Verdict {
  double old_old = 0, new_new = 0, new_old = 0;  ///< M(old/old), M(new/new), M(new→old)
  bool compatible = false;  ///< M(new→old) > M(old/old)
  /// (M(new→old) − M(old/old)) / (M(new/new) − M(old/old)); NaN ("n/a") when
  /// |M(new/new) − M(old/old)| < 1e-12.
  double gain = 0;
};

Verdict judge_compatibility(double old_old, double new_new, double new_old);

/// "yes" / "no".
inline const char* verdict_word(const Verdict& v) { return v.compatible ? "yes" : "no"; }

}  // namespace dualtune::eval

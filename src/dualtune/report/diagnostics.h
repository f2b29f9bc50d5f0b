#pragma once
// Output of the per-class upgrade diagnostics (eval/class_diagnostics.h): diagnostics.json
// (every class and group of every upgrade) and diagnostics.md (group tables; the class
// table too when there are at most kMaxClassRows classes). Written atomically.
#include <string>
#include <vector>

#include "dualtune/eval/class_diagnostics.h"

namespace dualtune::report {

inline constexpr size_t kMaxClassRows = 20;

std::string diagnostics_json(const std::vector<eval::UpgradeDiagnostics>& d);
std::string diagnostics_markdown(const std::vector<eval::UpgradeDiagnostics>& d);

/// Writes out_dir/diagnostics.json and out_dir/diagnostics.md. Creates out_dir.
void write_diagnostics(const std::vector<eval::UpgradeDiagnostics>& d, const std::string& out_dir);

}  // namespace dualtune::report

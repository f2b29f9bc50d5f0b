#pragma once
// Backfill curves (gallery/curve.h) as files: curve.json, curve.md (a table per
// metric with the area and the worst drop below the starting point) and
// plots/backfill_map.png (one line per order + merge). Written atomically.
#include <ostream>
#include <string>
#include <vector>

#include "dualtune/gallery/curve.h"

namespace dualtune::report {

/// JSON: {"title", "curves": [{"order", "merge", "area_map", "area_top1",
/// "worst_map_drop", "points": [{"fraction", "backfilled", "map", "top1", "queries"}]}]}.
std::string backfill_curves_json(const std::vector<gallery::Curve>& curves, const std::string& title);

/// Markdown: mAP and top-1 (%) per fraction, one row per curve, with the areas.
std::string backfill_curves_markdown(const std::vector<gallery::Curve>& curves);

/// Writes out_dir/curve.json, out_dir/curve.md and out_dir/plots/backfill_map.png
/// (skipped with a warning without gnuplot). Returns the PNG path relative to out_dir
/// ("" when not made).
std::string write_backfill_curves(const std::vector<gallery::Curve>& curves, const std::string& title,
                                  const std::string& out_dir, std::ostream& warn);

}  // namespace dualtune::report

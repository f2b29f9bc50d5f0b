#pragma once
// The backfill curve: quality of new-model queries over the gallery while the fraction
// f of items that carry their new embedding goes 0 → 1 in a backfill order, and its area
// (the mean quality over the transition). At fraction f the first round(f·n) items of the
// order are scored new/new, the rest new→old (first min(Do, Dn) components), and the
// scores are merged (merge.h). mAP and top-1 follow eval's definitions and tie rule
// (eval/ranking.h): a query's positives are gallery items with its label; its own item
// (leave-one-out) and, when cameras are known, same-label same-camera items are excluded;
// gallery label −1 is junk.
#include <cstdint>
#include <string>
#include <vector>

#include "dualtune/gallery/merge.h"

namespace dualtune::gallery {

/// A labelled gallery embedded by both models, and labelled new-model queries.
struct CurveData {
  int64_t n = 0, d_old = 0, d_new = 0;
  std::vector<float> old_vectors;   ///< n × d_old
  std::vector<float> new_vectors;   ///< n × d_new
  std::vector<int64_t> labels;      ///< n, −1 = junk
  std::vector<int64_t> cams;        ///< n or empty (unknown)
  int64_t nq = 0;
  std::vector<float> queries;       ///< nq × d_new
  std::vector<int64_t> query_labels;  ///< nq, −1 = skipped
  std::vector<int64_t> query_cams;    ///< nq or empty
  std::vector<int64_t> query_self;    ///< nq: gallery index of the query's own item, −1 = none
};

/// One curve to measure: an order of the gallery indices and a merge.
struct CurveSpec {
  std::string order_name;
  std::vector<int64_t> order;   ///< a permutation of 0..n−1: backfill order
  Merge merge = Merge::kRaw;
  Calibration cal_new, cal_old; ///< used by Merge::kCalibrated (new/new and new→old)
};

struct CurvePoint {
  double fraction = 0;     ///< requested
  int64_t backfilled = 0;  ///< round(fraction · n)
  double map = 0, top1 = 0;
  int64_t queries = 0;     ///< evaluated queries
};

struct Curve {
  std::string order, merge;
  std::vector<CurvePoint> points;
  double area_map = 0, area_top1 = 0;  ///< trapezoid area / fraction range (mean over the transition)
  /// min over points of map(f) − map(first point): < 0 means some fraction is worse than none.
  double worst_map_drop = 0;
};

/// Measures every spec at every fraction (ascending, in [0, 1]) in one pass over the
/// query blocks: each block's two similarity matrices are computed once and reused.
/// threads <= 0: all cores.
std::vector<Curve> backfill_curves(const CurveData& data, const std::vector<CurveSpec>& specs,
                                   const std::vector<double>& fractions, int threads = 0,
                                   int64_t max_block_bytes = int64_t(64) << 20);

/// Trapezoid area under (fraction, value) divided by the fraction range (0 for one point).
double curve_area(const std::vector<double>& fractions, const std::vector<double>& values);

/// "0,0.1,...": parses fractions; or a step count "steps:10" = 0, 0.1, ..., 1.
std::vector<double> parse_curve_fractions(const std::string& text);

}  // namespace dualtune::gallery

#pragma once
// Merging scores of different embedding versions into one ranking.
//
// A query of the rolling-out model meets new/new scores (backfilled items) and new→old
// scores (the rest). The two do not live on one scale: with BCT on open-set data a
// 25 %-backfilled gallery ranked worse than a fully old one, because backfilled
// impostors outscore old positives. Three merges (per query, per candidate from
// version v with cosine s):
//   raw         key = s                                    (what eval's mixed galleries do)
//   calibrated  key = a_v·s + b_v = logit P(same class | s, v), a logistic calibration per
//               (query model, version) fitted on labelled pairs of a training set
//               (fit_calibration). Strictly increasing in s (a_v > 0): within one version
//               the order is the raw order; across versions items compare by evidence.
//   rank        key = 1 − (r_v − ½) / n_v, r_v the rank of the item among the query's
//               candidates of version v and n_v their number: each version's ranking is
//               spread evenly over the merged list (the backfilled fraction of the top
//               equals the backfilled fraction of the gallery). Needs no fitting, but
//               assumes the backfilled items are a random sample of the gallery.
//   aligned     per query, new/new scores are mapped onto the new→old scale by matching
//               their mean and standard deviation over the items that have both
//               vectors (the backfilled ones keep their old vector until retire):
//               key = μ_o + σ_o (s − μ_n) / σ_n for a backfilled item, s for the others.
//               Label-free, fitted on the query's own scores of the same items, so a
//               biased (informed) backfill order does not bias it.
// The default merge is the one docs/GALLERY.md measured best (kDefaultMerge).
#include <cstdint>
#include <string>
#include <vector>

namespace dualtune::gallery {

enum class Merge { kRaw, kCalibrated, kRank, kAligned };
Merge parse_merge(const std::string& name);  ///< "raw" | "calibrated" | "rank" | "aligned"; throws otherwise
const char* merge_name(Merge m);

/// The merge used when none is named (chosen by the measurements in docs/GALLERY.md).
Merge default_merge();

/// logit P(same class | s) = a·s + b for one (query model, gallery version) pair.
struct Calibration {
  double a = 1, b = 0;
  int64_t genuine = 0, impostor = 0;  ///< pairs it was fitted on (0, 0: identity, not fitted)
  bool fitted() const { return genuine > 0; }
  double key(float s) const { return a * s + b; }
  std::string to_json() const;
  static Calibration from_json(const std::string& text);
};

/// Logistic regression of "same class" on the cosine score, genuine and impostor pairs
/// weighted to equal total weight (the weighting shifts every version's logit by the same
/// constant when all versions are fitted on the same pairs, so cross-version order is the
/// one of the true posterior). Scores are binned at 1/4096 and fitted by Newton's method.
/// @param n         pairs
/// @param scores    n cosine scores in [-1, 1]
/// @param genuine   n flags (1: same class)
/// Throws when there is no genuine or no impostor pair, or when the fit is not increasing
/// (a <= 0: the scores carry no evidence).
Calibration fit_calibration(int64_t n, const float* scores, const uint8_t* genuine);

/// The same fit from a histogram: bins over [-1, 1], counts of genuine / impostor pairs.
Calibration fit_calibration_binned(const std::vector<double>& genuine_counts, const std::vector<double>& impostor_counts);

/// Calibration of query vectors q (n × dq) against gallery vectors g (n × dg) of the same
/// n labelled items (a training set embedded by two models, or one model twice): every
/// pair i != j with both labels >= 0, scored on the first min(dq, dg) components.
Calibration fit_calibration_pairs(int64_t n, int64_t dq, const float* q, int64_t dg, const float* g,
                                  const int64_t* labels);

}  // namespace dualtune::gallery

#pragma once
// Compatibility report: report.json (schema: docs/REPORT_SCHEMA.md), report.md
// (tables) and PNG plots (gnuplot, pngcairo), and report.html (self-contained page with
// SVG charts, no gnuplot needed) in one output directory. Every file is written
// atomically; PNG plots are skipped with a warning when gnuplot is missing.
#include <ostream>
#include <string>
#include <vector>

#include "dualtune/eval/evaluate.h"

namespace dualtune::report {

/// The JSON document of report.json (NaN values become null).
std::string report_json(const eval::CompatibilityReport& rep);

/// Markdown tables: mAP and rank-1 matrices, per-upgrade cases (mAP, rank-1, mINP,
/// TAR@FAR 1e-3), verdicts with gains, mixed-gallery mAP, top-1 flip rates against
/// old/old (new→old, new/new, each mixed gallery). What the CLI prints.
std::string markdown_summary(const eval::CompatibilityReport& rep);

/// The whole report.md: summary tables, plot links and how to read the numbers.
std::string markdown_report(const eval::CompatibilityReport& rep, const std::vector<std::string>& plot_files);

/// The whole report.html: verdict in words, matrix heatmap, mixed-gallery and CMC
/// charts (inline SVG data URIs), every table, provenance. One file, no network.
std::string html_report(const eval::CompatibilityReport& rep);

/// Writes plots/*.dat and *.gp into out_dir and renders them with gnuplot:
/// cmc_<model>.png per new model, mixed_map.png, mixed_flips.png, matrix_map.png. Returns the PNG
/// paths relative to out_dir. Without gnuplot (or if it fails) writes a warning to
/// warn and returns the PNGs that were made.
std::vector<std::string> write_plots(const eval::CompatibilityReport& rep, const std::string& out_dir,
                                     std::ostream& warn);

/// Writes out_dir/report.json, report.md, report.html and plots/. Creates out_dir.
void write_report(const eval::CompatibilityReport& rep, const std::string& out_dir);

/// How an upgrade is named in tables and plots: the new model's name when every upgrade
/// is judged against the report's deployed model and its own gallery (the common case),
/// else "new→gallery" (lineages: "v3→v1"; forward transformations: "independent→old@h").
std::string upgrade_label(const eval::CompatibilityReport& rep, const eval::UpgradeResult& u);

/// True when every upgrade is judged against the report's deployed model's own gallery.
bool single_old_model(const eval::CompatibilityReport& rep);

/// "12.34" (percent, 2 decimals) or "n/a" for NaN.
std::string percent(double fraction);

}  // namespace dualtune::report

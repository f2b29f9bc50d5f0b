#pragma once
// `dualtune gallery curve` without CLI11 (torch-free, in dualtune_core, tested in
// test_core): load a gallery's curve data, measure the requested orders × merges, write
// curve.json / curve.md / the plot and print the tables.
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "dualtune/gallery/curve.h"

namespace dualtune::app {

struct CurveCommandOptions {
  std::string dir;               ///< gallery directory
  std::string model;             ///< new model ("" = the rolling-out one)
  std::vector<std::string> orders;  ///< plan, random, uncertainty, oracle (empty = all available)
  std::vector<std::string> merges;  ///< raw, rank, calibrated, aligned (empty = all available)
  std::string fractions = "steps:10";
  uint64_t seed = 0;             ///< random order seed
  std::string queries;           ///< labelled query feature directory ("" = leave-one-out over the gallery)
  std::string out;               ///< output directory ("" = DIR/curve)
  int threads = 0;
};

/// Runs the curve; returns the curves measured. Throws dualtune::Error on bad input.
std::vector<gallery::Curve> run_curve_command(const CurveCommandOptions& options, std::ostream& out, std::ostream& warn);

}  // namespace dualtune::app

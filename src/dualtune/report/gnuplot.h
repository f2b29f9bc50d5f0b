#pragma once
// gnuplot rendering shared by the report plots and the backfill curve plot: data and
// script files go into a plot directory (so a plot can be re-rendered or restyled by
// hand), gnuplot renders into a temporary file that is renamed into place.
#include <ostream>
#include <string>

namespace dualtune::report {

/// Names in file names: keep [A-Za-z0-9._-], replace the rest.
std::string file_stem(const std::string& name);
/// A gnuplot single-quoted string ('' escapes a quote).
std::string gp_str(const std::string& s);
/// A number for a data file ("NaN" when not finite).
std::string num(double x);
bool gnuplot_available();
/// The PNG terminal every plot starts with.
extern const char* kTerminal;

/// Writes <stem>.dat and <stem>.gp in plot_dir and renders <stem>.png. `script` is the
/// plotting part; it reads the data as 'DATA'. On failure writes a warning to warn and
/// returns false.
bool render(const std::string& plot_dir, const std::string& stem, const std::string& data, const std::string& script,
            std::ostream& warn);

}  // namespace dualtune::report

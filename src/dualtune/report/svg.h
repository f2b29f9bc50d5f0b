#pragma once
// Self-contained SVG charts for report.html: line charts (CMC, mixed gallery) and a
// heatmap (compatibility matrix). Pure strings: no fonts, scripts or links are loaded,
// so a chart renders anywhere, offline, as an <img> data URI or inline.
#include <string>
#include <vector>

namespace dualtune::report::svg {

struct Series {
  std::string label;
  std::vector<double> x, y;  ///< same length; a NaN y breaks the line
  std::string color;         ///< CSS colour, e.g. "#1b9e77"
  bool dashed = false;
  bool markers = true;       ///< a dot at every point
};

struct LineChart {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  bool log_x = false;
  std::vector<double> x_ticks;             ///< empty: about five evenly spaced ticks
  double y_floor = 0, y_ceiling = 100;     ///< the y range is fitted to the data within these
  int width = 560, height = 340;           ///< plot size in CSS pixels (the legend adds rows below)
};

/// The chart as a standalone SVG document.
std::string line_chart(const LineChart& chart);

struct Heatmap {
  std::string title, x_label, y_label;
  std::vector<std::string> rows, cols;      ///< row and column names
  std::vector<std::vector<double>> values;  ///< rows × cols, shown as "%.1f"; NaN is "n/a", uncoloured
  double lo = 0, hi = 100;                  ///< colour scale range
  std::string emphasis;                     ///< a row / column name drawn in bold (the deployed model)
};

/// The heatmap as a standalone SVG document, with the value printed in every cell.
std::string heatmap(const Heatmap& map);

/// Text escaped for XML and HTML (& < > " ').
std::string escape(const std::string& text);

/// RFC 4648 base64 of bytes (for data: URIs).
std::string base64(const std::string& bytes);

}  // namespace dualtune::report::svg

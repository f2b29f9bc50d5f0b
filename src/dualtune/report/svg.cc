#include "dualtune/report/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

namespace dualtune::report::svg {
namespace {

constexpr const char* kFont = "DejaVu Sans, Helvetica, Arial, sans-serif";

std::string fmt(double v, const char* f = "%.1f") {
  char buf[32];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

/// A tick label: integers without decimals, others with as few as needed.
std::string tick_label(double v) {
  if (std::fabs(v - std::round(v)) < 1e-9) return fmt(v, "%.0f");
  if (std::fabs(v * 10 - std::round(v * 10)) < 1e-9) return fmt(v, "%.1f");
  return fmt(v, "%.2f");
}

/// 1, 2 or 5 × 10^k, the smallest such step giving at most `count` intervals over span.
double nice_step(double span, int count) {
  const double raw = span / count;
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * p >= raw) return m * p;
  return 10 * p;
}

/// Rough text width in pixels at font size `size` (no font metrics offline).
double text_width(const std::string& s, double size) { return 0.58 * size * static_cast<double>(s.size()); }

std::string svg_open(int w, int h) {
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(w) + "\" height=\"" +
         std::to_string(h) + "\" viewBox=\"0 0 " + std::to_string(w) + " " + std::to_string(h) +
         "\" font-family=\"" + kFont + "\">\n<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n";
}

std::string text(double x, double y, const std::string& s, int size, const char* anchor = "middle",
                 const std::string& extra = "") {
  return "<text x=\"" + fmt(x) + "\" y=\"" + fmt(y) + "\" font-size=\"" + std::to_string(size) +
         "\" text-anchor=\"" + anchor + "\" fill=\"#222222\"" + extra + ">" + escape(s) + "</text>\n";
}

/// Linear interpolation through the sequential colour stops white - orange - dark brown
/// (ColorBrewer Oranges); *dark tells whether white text reads better on the result.
std::string heat_colour(double t, bool* dark) {
  t = std::clamp(t, 0.0, 1.0);
  const double at[4] = {0, 0.4, 0.75, 1};
  const double stops[4][3] = {{255, 245, 235}, {253, 174, 107}, {230, 85, 13}, {127, 39, 4}};
  int i = 0;
  while (i < 2 && t > at[i + 1]) ++i;
  const double u = (t - at[i]) / (at[i + 1] - at[i]);
  double rgb[3];
  for (int c = 0; c < 3; ++c) rgb[c] = stops[i][c] + u * (stops[i + 1][c] - stops[i][c]);
  *dark = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] < 150;
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", static_cast<int>(rgb[0]), static_cast<int>(rgb[1]),
                static_cast<int>(rgb[2]));
  return buf;
}

}  // namespace

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string base64(const std::string& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out += {k[v >> 18], k[(v >> 12) & 63], k[(v >> 6) & 63], k[v & 63]};
  }
  if (i + 1 == in.size()) {
    const unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += {k[v >> 18], k[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += {k[v >> 18], k[(v >> 12) & 63], k[(v >> 6) & 63], '='};
  }
  return out;
}

std::string line_chart(const LineChart& c) {
  // Data range.
  double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin, ymin = xmin, ymax = -xmin;
  for (const auto& s : c.series) {
    for (size_t i = 0; i < s.x.size(); ++i) {
      xmin = std::min(xmin, s.x[i]);
      xmax = std::max(xmax, s.x[i]);
      if (std::isfinite(s.y[i])) ymin = std::min(ymin, s.y[i]), ymax = std::max(ymax, s.y[i]);
    }
  }
  if (!std::isfinite(xmin)) xmin = 0, xmax = 1;
  if (xmax <= xmin) xmax = xmin + 1;
  if (!std::isfinite(ymin)) ymin = c.y_floor, ymax = c.y_ceiling;
  if (ymax - ymin < 1) ymin -= 0.5, ymax += 0.5;
  const double ystep = nice_step(ymax - ymin, 5);
  ymin = std::max(c.y_floor, std::floor(ymin / ystep) * ystep);
  ymax = std::min(c.y_ceiling, std::ceil(ymax / ystep) * ystep);
  if (ymax <= ymin) ymax = ymin + ystep;

  // Layout: title, plot area, x label, legend rows.
  const double left = 58, right = 18, top = 34, plot_h = c.height - top - 46;
  const double plot_w = c.width - left - right;
  std::vector<std::vector<size_t>> legend_rows(1);
  double row_w = 0;
  for (size_t i = 0; i < c.series.size(); ++i) {
    const double w = 34 + text_width(c.series[i].label, 12) + 18;
    if (row_w + w > plot_w && !legend_rows.back().empty()) legend_rows.emplace_back(), row_w = 0;
    legend_rows.back().push_back(i);
    row_w += w;
  }
  const int height = c.height + static_cast<int>(20 * legend_rows.size()) + 12;
  auto tx = [&](double x) {
    const double u = c.log_x ? (std::log10(x) - std::log10(xmin)) / (std::log10(xmax) - std::log10(xmin))
                             : (x - xmin) / (xmax - xmin);
    return left + u * plot_w;
  };
  auto ty = [&](double y) { return top + (1 - (y - ymin) / (ymax - ymin)) * plot_h; };

  std::ostringstream o;
  o << svg_open(c.width, height);
  o << text(c.width / 2.0, 20, c.title, 14, "middle", " font-weight=\"bold\"");
  // Grid and ticks.
  for (double y = ymin; y <= ymax + 1e-9; y += ystep) {
    o << "<line x1=\"" << fmt(left) << "\" x2=\"" << fmt(left + plot_w) << "\" y1=\"" << fmt(ty(y)) << "\" y2=\""
      << fmt(ty(y)) << "\" stroke=\"#e3e3e3\"/>\n"
      << text(left - 6, ty(y) + 4, tick_label(y), 12, "end");
  }
  std::vector<double> xt = c.x_ticks;
  if (xt.empty()) {
    const double step = nice_step(xmax - xmin, 5);
    for (double x = std::ceil(xmin / step) * step; x <= xmax + 1e-9; x += step) xt.push_back(x);
  }
  for (double x : xt) {
    if (x < xmin - 1e-9 || x > xmax + 1e-9) continue;
    o << "<line x1=\"" << fmt(tx(x)) << "\" x2=\"" << fmt(tx(x)) << "\" y1=\"" << fmt(top) << "\" y2=\""
      << fmt(top + plot_h) << "\" stroke=\"#efefef\"/>\n"
      << text(tx(x), top + plot_h + 17, tick_label(x), 12);
  }
  o << "<rect x=\"" << fmt(left) << "\" y=\"" << fmt(top) << "\" width=\"" << fmt(plot_w) << "\" height=\""
    << fmt(plot_h) << "\" fill=\"none\" stroke=\"#888888\"/>\n";
  o << text(left + plot_w / 2, top + plot_h + 36, c.x_label, 13);
  o << "<text transform=\"translate(16 " << fmt(top + plot_h / 2) << ") rotate(-90)\" font-size=\"13\" "
    << "text-anchor=\"middle\" fill=\"#222222\">" << escape(c.y_label) << "</text>\n";
  // Series: polylines broken at NaN, then markers.
  for (const auto& s : c.series) {
    const std::string dash = s.dashed ? " stroke-dasharray=\"7 5\"" : "";
    std::string pts;
    auto flush = [&] {
      if (!pts.empty())
        o << "<polyline fill=\"none\" stroke=\"" << s.color << "\" stroke-width=\"2.2\" stroke-linejoin=\"round\""
          << dash << " points=\"" << pts << "\"/>\n";
      pts.clear();
    };
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i])) {
        flush();
        continue;
      }
      pts += (pts.empty() ? "" : " ") + fmt(tx(s.x[i])) + "," + fmt(ty(std::clamp(s.y[i], ymin, ymax)));
    }
    flush();
    if (!s.markers) continue;
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      o << "<circle cx=\"" << fmt(tx(s.x[i])) << "\" cy=\"" << fmt(ty(std::clamp(s.y[i], ymin, ymax)))
        << "\" r=\"3.4\" fill=\"" << s.color << "\"/>\n";
    }
  }
  // Legend below the x label.
  for (size_t r = 0; r < legend_rows.size(); ++r) {
    double x = left;
    const double y = c.height + 20.0 * static_cast<double>(r) + 10;
    for (size_t i : legend_rows[r]) {
      const auto& s = c.series[i];
      o << "<line x1=\"" << fmt(x) << "\" x2=\"" << fmt(x + 26) << "\" y1=\"" << fmt(y - 4) << "\" y2=\"" << fmt(y - 4)
        << "\" stroke=\"" << s.color << "\" stroke-width=\"2.2\"" << (s.dashed ? " stroke-dasharray=\"7 5\"" : "")
        << "/>\n";
      if (s.markers) o << "<circle cx=\"" << fmt(x + 13) << "\" cy=\"" << fmt(y - 4) << "\" r=\"3.4\" fill=\"" << s.color << "\"/>\n";
      o << text(x + 32, y, s.label, 12, "start");
      x += 34 + text_width(s.label, 12) + 18;
    }
  }
  o << "</svg>\n";
  return o.str();
}

std::string heatmap(const Heatmap& m) {
  const size_t nr = m.rows.size(), nc = m.cols.size();
  double label_w = 0;
  for (const auto& r : m.rows) label_w = std::max(label_w, text_width(r, 13));
  double col_label_h = 0;
  for (const auto& c : m.cols) col_label_h = std::max(col_label_h, text_width(c, 13) * 0.71 + 14);
  const double cell = std::clamp(420.0 / static_cast<double>(std::max<size_t>(nc, 1)), 56.0, 96.0);
  const double left = 36 + label_w + 10, top = 34;
  const double grid_w = cell * static_cast<double>(nc), grid_h = cell * static_cast<double>(nr);
  const double bar_x = left + grid_w + 24;
  const int width = static_cast<int>(bar_x + 70);
  const int height = static_cast<int>(top + grid_h + col_label_h + 34);

  std::ostringstream o;
  o << svg_open(width, height);
  o << text(width / 2.0, 20, m.title, 14, "middle", " font-weight=\"bold\"");
  for (size_t r = 0; r < nr; ++r) {
    for (size_t c = 0; c < nc; ++c) {
      const double v = m.values[r][c];
      const double x = left + cell * static_cast<double>(c), y = top + cell * static_cast<double>(r);
      bool dark = false;
      const std::string fill = std::isfinite(v) ? heat_colour((v - m.lo) / (m.hi - m.lo), &dark) : "#f4f4f4";
      o << "<rect x=\"" << fmt(x) << "\" y=\"" << fmt(y) << "\" width=\"" << fmt(cell) << "\" height=\"" << fmt(cell)
        << "\" fill=\"" << fill << "\" stroke=\"#ffffff\" stroke-width=\"2\"/>\n";
      o << "<text x=\"" << fmt(x + cell / 2) << "\" y=\"" << fmt(y + cell / 2 + 5) << "\" font-size=\"14\" "
        << "text-anchor=\"middle\" fill=\"" << (dark ? "#ffffff" : "#222222") << "\""
        << (r == c ? " font-weight=\"bold\"" : "") << ">" << (std::isfinite(v) ? fmt(v) : "n/a") << "</text>\n";
    }
    const std::string bold = m.rows[r] == m.emphasis ? " font-weight=\"bold\"" : "";
    o << text(left - 8, top + cell * (static_cast<double>(r) + 0.5) + 5, m.rows[r], 13, "end", bold);
  }
  for (size_t c = 0; c < nc; ++c) {
    const double x = left + cell * (static_cast<double>(c) + 0.5), y = top + grid_h + 14;
    const std::string bold = m.cols[c] == m.emphasis ? " font-weight=\"bold\"" : "";
    o << "<text transform=\"translate(" << fmt(x) << " " << fmt(y) << ") rotate(-45)\" font-size=\"13\" "
      << "text-anchor=\"end\" fill=\"#222222\"" << bold << ">" << escape(m.cols[c]) << "</text>\n";
  }
  o << text(left + grid_w / 2, height - 8.0, m.x_label, 13);
  o << "<text transform=\"translate(16 " << fmt(top + grid_h / 2) << ") rotate(-90)\" font-size=\"13\" "
    << "text-anchor=\"middle\" fill=\"#222222\">" << escape(m.y_label) << "</text>\n";
  // Colour bar.
  const int steps = 24;
  for (int i = 0; i < steps; ++i) {
    bool dark = false;
    const double t = 1 - (i + 0.5) / steps;
    o << "<rect x=\"" << fmt(bar_x) << "\" y=\"" << fmt(top + grid_h * i / steps) << "\" width=\"14\" height=\""
      << fmt(grid_h / steps + 0.5) << "\" fill=\"" << heat_colour(t, &dark) << "\"/>\n";
  }
  o << "<rect x=\"" << fmt(bar_x) << "\" y=\"" << fmt(top) << "\" width=\"14\" height=\"" << fmt(grid_h)
    << "\" fill=\"none\" stroke=\"#888888\"/>\n";
  o << text(bar_x + 18, top + 10, fmt(m.hi, "%.0f"), 12, "start");
  o << text(bar_x + 18, top + grid_h, fmt(m.lo, "%.0f"), 12, "start");
  o << "</svg>\n";
  return o.str();
}

}  // namespace dualtune::report::svg

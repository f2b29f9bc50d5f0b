#include "dualtune/report/backfill_report.h"

#include <cstdio>
#include <filesystem>
#include <sstream>

#include <nlohmann/json.hpp>

#include "dualtune/report/gnuplot.h"
#include "dualtune/util/atomic_file.h"

namespace fs = std::filesystem;

namespace dualtune::report {
namespace {

std::string pct(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", 100 * x);
  return buf;
}

std::string label(const gallery::Curve& c) { return c.order + " order, " + c.merge + " merge"; }

}  // namespace

std::string backfill_curves_json(const std::vector<gallery::Curve>& curves, const std::string& title) {
  nlohmann::json j;
  j["title"] = title;
  j["curves"] = nlohmann::json::array();
  for (const auto& c : curves) {
    nlohmann::json jc{{"order", c.order},
                      {"merge", c.merge},
                      {"area_map", c.area_map},
                      {"area_top1", c.area_top1},
                      {"worst_map_drop", c.worst_map_drop},
                      {"points", nlohmann::json::array()}};
    for (const auto& p : c.points)
      jc["points"].push_back({{"fraction", p.fraction}, {"backfilled", p.backfilled}, {"map", p.map}, {"top1", p.top1},
                              {"queries", p.queries}});
    j["curves"].push_back(jc);
  }
  return j.dump(2) + "\n";
}

std::string backfill_curves_markdown(const std::vector<gallery::Curve>& curves) {
  if (curves.empty()) return "";
  std::ostringstream os;
  for (const bool map : {true, false}) {
    os << "| order | merge |";
    for (const auto& p : curves.front().points) os << " " << pct(p.fraction) << " % |";
    os << " area | worst drop |\n|---|---|";
    for (size_t i = 0; i < curves.front().points.size(); ++i) os << "---|";
    os << "---|---|\n";
    for (const auto& c : curves) {
      os << "| " << c.order << " | " << c.merge << " |";
      double worst = 0;
      for (const auto& p : c.points) {
        os << " " << pct(map ? p.map : p.top1) << " |";
        worst = std::min(worst, (map ? p.map : p.top1) - (map ? c.points.front().map : c.points.front().top1));
      }
      os << " **" << pct(map ? c.area_map : c.area_top1) << "** | " << pct(worst) << " |\n";
    }
    os << "\n" << (map ? "mAP" : "top-1") << " (%) of new-model queries against the fraction of the gallery backfilled; "
       << "area = mean over the transition (trapezoids); worst drop = lowest value minus the value at the first "
          "fraction (0 = never below it).\n\n";
  }
  return os.str();
}

std::string write_backfill_curves(const std::vector<gallery::Curve>& curves, const std::string& title,
                                  const std::string& out_dir, std::ostream& warn) {
  ensure_writable_dir(out_dir);
  write_text_atomic((fs::path(out_dir) / "curve.json").string(), backfill_curves_json(curves, title));
  write_text_atomic((fs::path(out_dir) / "curve.md").string(), "# " + title + "\n\n" + backfill_curves_markdown(curves));
  if (curves.empty() || !gnuplot_available()) {
    if (!curves.empty()) warn << "warning: gnuplot not found on PATH; backfill plot skipped (install gnuplot-nox)\n";
    return "";
  }
  const std::string plot_dir = (fs::path(out_dir) / "plots").string();
  ensure_writable_dir(plot_dir);
  std::ostringstream data;
  data << "# fraction_backfilled";
  for (const auto& c : curves) data << " " << file_stem(c.order + "_" + c.merge) << "_map";
  data << " (%)\n";
  for (size_t i = 0; i < curves.front().points.size(); ++i) {
    data << num(curves.front().points[i].fraction);
    for (const auto& c : curves) data << " " << num(100 * c.points[i].map);
    data << "\n";
  }
  // One colour per order, one dash pattern per merge.
  const char* colours[] = {"#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02"};
  std::vector<std::string> orders, merges;
  auto index_of = [](std::vector<std::string>& v, const std::string& s) {
    for (size_t i = 0; i < v.size(); ++i)
      if (v[i] == s) return i;
    v.push_back(s);
    return v.size() - 1;
  };
  std::ostringstream gp;
  gp << "set title " << gp_str(title) << "\nset xlabel 'fraction of the gallery backfilled'\nset ylabel 'mAP (%)'\n"
     // One key entry per line below the axes (long titles leave gnuplot one column), so
     // the bottom margin grows with the entries: the x label, the tics and the box need 4.
     << "set grid\nset key outside bottom center horizontal box maxcols 2\nset bmargin "
     << 4 + curves.size() + 1 << "\n"
     << "set xrange [-0.02:1.02]\nset xtics 0.1\nplot ";
  for (size_t i = 0; i < curves.size(); ++i) {
    const size_t o = index_of(orders, curves[i].order), m = index_of(merges, curves[i].merge);
    gp << (i ? ", \\\n     " : "") << "DATA using 1:" << i + 2 << " with linespoints lw 2 pt " << 5 + 2 * (m % 4)
       << " ps 0.9 dt " << m + 1 << " lc rgb '" << colours[o % 6] << "' title "
       << gp_str(label(curves[i]) + " (area " + pct(curves[i].area_map) + ")");
  }
  gp << ", \\\n     " << num(100 * curves.front().points.front().map)
     << " with lines dt 3 lw 1 lc rgb 'black' title 'no backfill'\n";
  return render(plot_dir, "backfill_map", data.str(), gp.str(), warn) ? "plots/backfill_map.png" : "";
}

}  // namespace dualtune::report

// gnuplot plots: data and script files are written into <out_dir>/plots/ (so a plot can
// be re-rendered or restyled by hand), gnuplot renders into a temporary file that is
// renamed into place, like every other output.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include "dualtune/report/gnuplot.h"
#include "dualtune/report/report.h"
#include "dualtune/util/atomic_file.h"

namespace fs = std::filesystem;

namespace dualtune::report {

std::vector<std::string> write_plots(const eval::CompatibilityReport& rep, const std::string& out_dir,
                                     std::ostream& warn) {
  std::vector<std::string> made;
  if (!gnuplot_available()) {
    warn << "warning: gnuplot not found on PATH; plots skipped (install gnuplot-nox)\n";
    return made;
  }
  const std::string plot_dir = (fs::path(out_dir) / "plots").string();
  ensure_writable_dir(plot_dir);

  // CMC curves of each upgrade's three cases.
  for (const auto& u : rep.upgrades) {
    std::ostringstream data;
    data << "# rank old/old new/new new->old (CMC, %)\n";
    for (size_t k = 0; k < u.old_old.cmc.size(); ++k) {
      data << k + 1 << " " << num(100 * u.old_old.cmc[k]) << " " << num(100 * u.new_new.cmc[k]) << " "
           << num(100 * u.new_old.cmc[k]) << "\n";
    }
    std::ostringstream gp;
    gp << "set title " << gp_str("CMC: new model '" + u.new_model + "' vs old '" + u.old_model + "'") << "\n"
       << "set xlabel 'rank k'\nset ylabel 'matching rate at rank <= k (%)'\n"
       << "set grid\nset key bottom right box opaque\n"
       << "set logscale x\nset xtics (1, 2, 5, 10, 20, 50)\nset xrange [0.9:55]\n"
       << "plot DATA using 1:2 with linespoints pt 7 ps 0.6 lc rgb '#1b9e77' title "
       << gp_str("old/old (" + u.old_model + ")") << ", \\\n"
       << "     DATA using 1:3 with linespoints pt 5 ps 0.6 lc rgb '#7570b3' title "
       << gp_str("new/new (" + u.new_model + ")") << ", \\\n"
       << "     DATA using 1:4 with linespoints pt 9 ps 0.7 lc rgb '#d95f02' title "
       << gp_str("new->old (" + u.new_model + " query, " + u.gallery_model + " gallery)") << "\n";
    const std::string stem = "cmc_" + file_stem(upgrade_label(rep, u));
    if (render(plot_dir, stem, data.str(), gp.str(), warn)) made.push_back("plots/" + stem + ".png");
  }

  // mAP vs fraction of old gallery items, one line per new model.
  if (!rep.upgrades.empty() && !rep.upgrades.front().mixed.empty()) {
    std::ostringstream data;
    data << "# old_fraction";
    for (const auto& u : rep.upgrades) data << " " << file_stem(upgrade_label(rep, u));
    data << " (mAP %)\n";
    for (size_t i = 0; i < rep.upgrades.front().mixed.size(); ++i) {
      data << num(rep.upgrades.front().mixed[i].old_fraction);
      for (const auto& u : rep.upgrades) data << " " << num(100 * u.mixed[i].metrics.map);
      data << "\n";
    }
    std::ostringstream gp;
    gp << "set title "
       << gp_str(single_old_model(rep) ? "Mixed gallery: new-model queries, a fraction of the gallery still '" +
                                             rep.old_model + "'"
                                       : std::string("Mixed gallery: new-model queries, a fraction of the gallery "
                                                     "still old"))
       << "\nset xlabel 'fraction of gallery items with old features'\nset ylabel 'mAP (%)'\n"
       << "set grid\nset key outside bottom center horizontal box\nset bmargin 8\nset xrange [-0.05:1.05]\nset xtics 0.25\n"
       << "plot ";
    for (size_t i = 0; i < rep.upgrades.size(); ++i) {
      gp << (i ? ", \\\n     " : "") << "DATA using 1:" << i + 2 << " with linespoints pt " << 5 + 2 * (i % 4)
         << " ps 1.1 title " << gp_str(upgrade_label(rep, rep.upgrades[i]));
    }
    if (single_old_model(rep)) {
      gp << ", \\\n     " << num(100 * rep.upgrades.front().old_old.map)
         << " with lines dt 2 lc rgb 'black' title " << gp_str("old/old (" + rep.old_model + ")");
    }
    gp << "\n";
    if (render(plot_dir, "mixed_map", data.str(), gp.str(), warn)) made.push_back("plots/mixed_map.png");
  }

  // Negative and positive flip rates vs fraction of old gallery items: each new model in
  // its mixed_map colour and point shape, negative solid and filled, positive dashed and open.
  if (!rep.upgrades.empty() && !rep.upgrades.front().mixed.empty()) {
    std::ostringstream data;
    data << "# old_fraction, then per new model: negative positive (flip rate %)\n# old_fraction";
    for (const auto& u : rep.upgrades)
      data << " " << file_stem(upgrade_label(rep, u)) << ":neg " << file_stem(upgrade_label(rep, u)) << ":pos";
    data << "\n";
    for (size_t i = 0; i < rep.upgrades.front().mixed.size(); ++i) {
      data << num(rep.upgrades.front().mixed[i].old_fraction);
      for (const auto& u : rep.upgrades)
        data << " " << num(100 * u.mixed[i].flips.negative) << " " << num(100 * u.mixed[i].flips.positive);
      data << "\n";
    }
    std::ostringstream gp;
    // The terminal line only widens the canvas for the key on the right; render() sets the output.
    gp << "set terminal pngcairo noenhanced size 1150,650 font 'sans,12' linewidth 2\n"
       << "set title " << gp_str("Top-1 flips against old/old, new-model queries")
       << "\nset xlabel 'fraction of gallery items with old features'\nset ylabel 'queries (%)'\n"
       << "set grid\nset key outside right center vertical Left reverse box\n"
       << "set xrange [-0.05:1.05]\nset xtics 0.25\nset yrange [0:*]\nplot ";
    for (size_t i = 0; i < rep.upgrades.size(); ++i) {
      const std::string m = upgrade_label(rep, rep.upgrades[i]);
      const size_t pt = 5 + 2 * (i % 4);
      gp << (i ? ", \\\n     " : "") << "DATA using 1:" << 2 + 2 * i << " with linespoints dt 1 pt " << pt
         << " ps 1.1 lc " << i + 1 << " title " << gp_str(m + ": negative (right -> wrong)")
         << ", \\\n     DATA using 1:" << 3 + 2 * i << " with linespoints dt 2 pt " << pt - 1 << " ps 1.1 lc " << i + 1
         << " title "
         << gp_str(m + ": positive (wrong -> right)");
    }
    gp << "\n";
    if (render(plot_dir, "mixed_flips", data.str(), gp.str(), warn)) made.push_back("plots/mixed_flips.png");
  }

  // Compatibility matrix heatmap of mAP with the values in the cells.
  if (!rep.matrix.empty()) {
    const size_t n = rep.models.size();
    std::ostringstream data;
    for (size_t q = 0; q < n; ++q) {
      for (size_t g = 0; g < n; ++g) data << (g ? " " : "") << num(100 * rep.matrix[q][g].map);
      data << "\n";
    }
    std::ostringstream tics;
    for (size_t i = 0; i < n; ++i) tics << (i ? ", " : "") << gp_str(rep.models[i]) << " " << i;
    const int side = static_cast<int>(std::max<size_t>(520, 150 + 110 * n));
    std::ostringstream gp;
    gp << "set terminal pngcairo noenhanced size " << side + 140 << "," << side << " font 'sans,12'\n"
       << "set title 'Compatibility matrix: mAP (%)'\nset xlabel 'gallery model'\nset ylabel 'query model'\n"
       << "set xtics (" << tics.str() << ") rotate by -30 left\nset ytics (" << tics.str() << ")\n"
       << "set tics scale 0\nset xrange [-0.5:" << n - 0.5 << "]\nset yrange [" << n - 0.5 << ":-0.5]\n"
       << "set size ratio -1\nset palette defined (0 '#fff5eb', 0.5 '#fdae6b', 1 '#e6550d')\n"
       << "set cblabel 'mAP (%)'\nunset key\n"
       << "plot DATA matrix with image, DATA matrix using 1:2:(sprintf('%.1f', $3)) with labels font ',13'\n";
    // The terminal line above only resizes; the output file set by render() stays.
    if (render(plot_dir, "matrix_map", data.str(), gp.str(), warn)) made.push_back("plots/matrix_map.png");
  }
  return made;
}

}  // namespace dualtune::report

#include <cmath>
#include <functional>
#include <iomanip>
#include <sstream>

#include "dualtune/report/report.h"
#include "dualtune/util/provenance.h"

namespace dualtune::report {
namespace {

std::string gain_str(double g) {
  if (!std::isfinite(g)) return "n/a";
  std::ostringstream os;
  os << std::fixed << std::setprecision(2) << g;
  return os.str();
}

std::string r_str(double r) {
  std::ostringstream os;
  os << r;
  return os.str();
}

void matrix_table(std::ostringstream& os, const eval::CompatibilityReport& rep, const char* title,
                  double eval::Metrics::*field) {
  os << "### " << title << " (%), rows: query model, columns: gallery model\n\n| query \\ gallery |";
  for (const auto& m : rep.models) os << " " << m << " |";
  os << "\n|---|";
  for (size_t i = 0; i < rep.models.size(); ++i) os << "---:|";
  os << "\n";
  for (size_t q = 0; q < rep.models.size(); ++q) {
    os << "| " << rep.models[q] << " |";
    for (size_t g = 0; g < rep.models.size(); ++g) os << " " << percent(rep.matrix[q][g].*field) << " |";
    os << "\n";
  }
  os << "\n";
}

/// "negative / positive" flip rates in %.
// One row per upgrade, one column per old fraction r of the mixed gallery (none when
// the report has no mixed galleries).
void mixed_table(std::ostringstream& os, const eval::CompatibilityReport& rep, const char* what,
                 const std::function<std::string(const eval::MixedPoint&)>& cell) {
  const auto& first = rep.upgrades.front();
  if (first.mixed.empty()) return;
  os << "\n### Mixed gallery: " << what << " when a fraction r of the gallery is still old\n\n| new model |";
  for (const auto& p : first.mixed) os << " r = " << r_str(p.old_fraction) << " |";
  os << "\n|---|";
  for (size_t i = 0; i < first.mixed.size(); ++i) os << "---:|";
  os << "\n";
  for (const auto& u : rep.upgrades) {
    os << "| " << upgrade_label(rep, u) << " |";
    for (const auto& p : u.mixed) os << " " << cell(p) << " |";
    os << "\n";
  }
}

std::string flips_str(const eval::FlipRates& f) { return percent(f.negative) + " / " + percent(f.positive); }

void flip_tables(std::ostringstream& os, const eval::CompatibilityReport& rep) {
  os << "\n### Regressions: top-1 flips against old/old (%)\n\n"
     << "Negative flip: a query whose top-1 was right with the old model (old/old) and is wrong after the "
        "upgrade; positive flip: wrong before, right after. "
        "Rates over the queries evaluated in both cases; rank-1 after − rank-1 before = positive − negative.\n\n"
     << "| new model | new→old negative | new→old positive | new/new negative | new/new positive |\n"
     << "|---|---:|---:|---:|---:|\n";
  for (const auto& u : rep.upgrades) {
    os << "| " << upgrade_label(rep, u) << " | " << percent(u.flips_new_old.negative) << " | "
       << percent(u.flips_new_old.positive) << " | " << percent(u.flips_new_new.negative) << " | "
       << percent(u.flips_new_new.positive) << " |\n";
  }
  mixed_table(os, rep, "negative / positive flip rate (%)",
              [](const eval::MixedPoint& p) { return flips_str(p.flips); });
}

}  // namespace

bool single_old_model(const eval::CompatibilityReport& rep) {
  for (const auto& u : rep.upgrades) {
    // Unset fields mean the report's deployed model and its own gallery.
    const std::string& old = u.old_model.empty() ? rep.old_model : u.old_model;
    if (old != rep.old_model || (!u.gallery_model.empty() && u.gallery_model != old)) return false;
  }
  return true;
}

std::string upgrade_label(const eval::CompatibilityReport& rep, const eval::UpgradeResult& u) {
  return single_old_model(rep) ? u.new_model : u.new_model + "→" + u.gallery_model;
}

std::string percent(double fraction) {
  if (!std::isfinite(fraction)) return "n/a";
  std::ostringstream os;
  os << std::fixed << std::setprecision(2) << 100 * fraction;
  return os.str();
}

std::string markdown_summary(const eval::CompatibilityReport& rep) {
  std::ostringstream os;
  matrix_table(os, rep, "mAP", &eval::Metrics::map);
  matrix_table(os, rep, "Rank-1", &eval::Metrics::rank1);
  if (rep.upgrades.empty()) return os.str();

  if (single_old_model(rep)) {
    os << "### Upgrades from the deployed model `" << rep.old_model << "` (%)\n\n";
  } else {
    os << "### Upgrades (%): each new model against its old model; new→old is the cross-test against the old "
          "model's gallery, or against the gallery named after the arrow (h(old): old features mapped by a forward "
          "transformation)\n\n";
  }
  os << "| new model | case | mAP | rank-1 | mINP | TAR@FAR=1e-3 |\n|---|---|---:|---:|---:|---:|\n";
  for (const auto& u : rep.upgrades) {
    const std::pair<const char*, const eval::Metrics*> cases[] = {
        {"old/old", &u.old_old}, {"new/new", &u.new_new}, {"new→old", &u.new_old}};
    for (const auto& [name, m] : cases) {
      os << "| " << upgrade_label(rep, u) << " | " << name << " | " << percent(m->map) << " | " << percent(m->rank1) << " | "
         << percent(m->minp) << " | " << percent(m->tar_at_far[1]) << " |\n";
    }
  }
  os << "\n### Verdict: compatible iff M(new→old) > M(old/old); "
        "gain = (M(new→old) − M(old/old)) / (M(new/new) − M(old/old))\n\n"
     << "| new model | compatible (mAP) | gain (mAP) | compatible (rank-1) | gain (rank-1) |\n"
     << "|---|---|---:|---|---:|\n";
  for (const auto& u : rep.upgrades) {
    os << "| " << upgrade_label(rep, u) << " | " << eval::verdict_word(u.map) << " | " << gain_str(u.map.gain) << " | "
       << eval::verdict_word(u.rank1) << " | " << gain_str(u.rank1.gain) << " |\n";
  }
  mixed_table(os, rep, "mAP (%) of new-model queries",
              [](const eval::MixedPoint& p) { return percent(p.metrics.map); });
  flip_tables(os, rep);
  if (!rep.generation_mixes.empty()) {
    os << "\n### Galleries of several generations (%): the items hold the listed models' features in the given "
          "shares\n\n| query model | gallery | mAP | rank-1 |\n|---|---|---:|---:|\n";
    for (const auto& g : rep.generation_mixes) {
      os << "| " << g.spec.query_model << " | ";
      for (size_t k = 0; k < g.spec.galleries.size(); ++k)
        os << (k ? " + " : "") << g.spec.galleries[k] << " " << r_str(std::round(1000 * g.spec.fractions[k]) / 1000);
      os << " | " << percent(g.metrics.map) << " | " << percent(g.metrics.rank1) << " |\n";
    }
  }
  return os.str();
}

std::string markdown_report(const eval::CompatibilityReport& rep, const std::vector<std::string>& plot_files) {
  std::ostringstream os;
  os << "# Compatibility report\n\n"
     << "- protocol: `" << rep.protocol << "`"
     << (rep.protocol == "loo" ? " (leave-one-out: each item queries all others)"
                               : " (query/gallery; same id + same camera and junk excluded)")
     << "\n- deployed (old) model: `" << rep.old_model << "`\n- models:";
  for (size_t i = 0; i < rep.models.size(); ++i) os << (i ? "," : "") << " `" << rep.models[i] << "` (d = " << rep.dims[i] << ")";
  os << "\n- " << rep.num_query << " queries, " << rep.num_gallery << " gallery items";
  if (!rep.matrix.empty() && !rep.matrix[0].empty()) {
    os << "; " << rep.matrix[0][0].queries << " evaluated, " << rep.matrix[0][0].skipped
       << " skipped (label -1 or no positive in the gallery)";
  }
  const auto& p = provenance();
  os << "\n- mixed-gallery seed: " << rep.seed << "\n- produced by: dualtune " << p.version << " (git " << p.git_revision
     << "), libtorch " << p.libtorch << ", FAISS " << p.faiss << ", OpenCV " << p.opencv << "\n\n"
     << "Cosine similarity on L2-normalised features; models of different sizes are compared on their first "
        "min(d) components. Ties are ranked by gallery index. mAP, rank-k, mINP and TAR are percentages.\n\n"
     << "## Summary\n\n"
     << markdown_summary(rep);
  if (!plot_files.empty()) {
    os << "\n## Plots\n\n";
    for (const auto& p : plot_files) os << "![" << p << "](" << p << ")\n\n";
  }
  return os.str();
}

}  // namespace dualtune::report

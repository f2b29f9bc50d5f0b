// report.html: the compatibility report as one self-contained page (inline CSS, charts
// as SVG data URIs, no network), meant to be opened on a laptop: the verdict in words
// first, then the figures (matrix heatmap, mixed galleries, CMC), then every table.
// The page is a list of sections, each a function of the CompatibilityReport: a new
// part of the report is one more entry in sections().
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <sstream>

#include "dualtune/report/report.h"
#include "dualtune/report/svg.h"
#include "dualtune/util/provenance.h"

namespace dualtune::report {
namespace {

using eval::CompatibilityReport;
using svg::escape;

const char* const kOldColour = "#1b9e77";  // the same roles keep the same colours as the PNG plots
const char* const kNewColour = "#7570b3";
const char* const kCrossColour = "#d95f02";
const char* const kPalette[] = {"#d95f02", "#7570b3", "#1b9e77", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#1f78b4"};

/// "69.2 %" or "n/a".
std::string pct(double fraction) {
  if (!std::isfinite(fraction)) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %%", 100 * fraction);
  return buf;
}

std::string gain_text(double g) {
  if (!std::isfinite(g)) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", g);
  return buf;
}

std::string b(const std::string& name) { return "<b>" + escape(name) + "</b>"; }

/// A chart as <figure><img src="data:image/svg+xml;base64,..."></figure>.
std::string figure(const std::string& svg_doc, const std::string& caption) {
  return "<figure><img alt=\"" + escape(caption) + "\" src=\"data:image/svg+xml;base64," + svg::base64(svg_doc) +
         "\"><figcaption>" + escape(caption) + "</figcaption></figure>\n";
}

// ---- sections -------------------------------------------------------------------

std::string verdict_section(const CompatibilityReport& rep) {
  std::ostringstream o;
  if (rep.upgrades.empty()) {
    o << "<p class=\"headline\">Only the deployed model " << b(rep.old_model)
      << " was evaluated: there is no upgrade to judge.</p>\n";
    return o.str();
  }
  // One deployed model: "v2 is compatible with the deployed model v1". Several (a
  // lineage, --upgrade pairs): each upgrade is named new→gallery and judged against the
  // model it replaces.
  const bool single = single_old_model(rep);
  std::vector<std::string> compatible;
  const eval::UpgradeResult* best = nullptr;
  for (const auto& u : rep.upgrades) {
    if (u.map.compatible) compatible.push_back(upgrade_label(rep, u));
    if (!best || (std::isfinite(u.new_old.map) && !(u.new_old.map <= best->new_old.map))) best = &u;
  }
  const size_t n = rep.upgrades.size(), k = compatible.size();
  o << "<p class=\"headline " << (k == n ? "good" : k == 0 ? "bad" : "mixed") << "\">";
  if (!single) {
    o << k << " of " << n << " upgrades are compatible with the model they replace" << (k ? ": " : ".");
    for (size_t i = 0; i < k; ++i) o << (i ? ", " : "") << b(compatible[i]);
    if (k) o << ".";
  } else if (k == n) {
    o << (n == 1 ? "The new model " + b(rep.upgrades[0].new_model) + " is"
                 : "All " + std::to_string(n) + " new models are")
      << " compatible with the deployed model " << b(rep.old_model) << ".";
  } else if (k == 0) {
    o << (n == 1 ? "The new model " + b(rep.upgrades[0].new_model) + " is not"
                 : "None of the " + std::to_string(n) + " new models is")
      << " compatible with the deployed model " << b(rep.old_model)
      << ": deploying " << (n == 1 ? "it" : "any of them") << " means re-extracting the whole gallery first.";
  } else {
    o << k << " of " << n << " new models are compatible with the deployed model " << b(rep.old_model) << ": ";
    for (size_t i = 0; i < k; ++i) o << (i ? ", " : "") << b(compatible[i]);
    o << ".";
  }
  if (n > 1 && best && single)
    o << " Best cross-model mAP: " << b(best->new_model) << ", " << pct(best->new_old.map) << ".";
  o << "</p>\n<ul class=\"verdicts\">\n";
  for (const auto& u : rep.upgrades) {
    o << "<li class=\"" << (u.map.compatible ? "good" : "bad") << "\"><span class=\"badge\">"
      << (u.map.compatible ? "compatible" : "not compatible") << "</span> ";
    const std::string old_model = u.old_model.empty() ? rep.old_model : u.old_model;
    const std::string gallery = u.gallery_model.empty() ? old_model : u.gallery_model;
    const std::string old_gallery = gallery == old_model
                                        ? b(old_model) + "'s gallery"
                                        : "the gallery " + b(gallery) + " (standing in for " + b(old_model) + "'s)";
    if (u.map.compatible) {
      o << b(u.new_model) << " can replace " << b(old_model) << " without re-extracting the gallery: its queries "
        << "against " << old_gallery << " reach " << pct(u.map.new_old) << " mAP, above the " << pct(u.map.old_old)
        << " of " << b(old_model) << " itself; after re-extraction they reach " << pct(u.map.new_new)
        << " (update gain " << gain_text(u.map.gain) << ").";
    } else {
      o << "The queries of " << b(u.new_model) << " against " << old_gallery << " reach " << pct(u.map.new_old)
        << " mAP, not above the " << pct(u.map.old_old) << " of " << b(old_model)
        << " itself: the gallery must be re-extracted before it serves (then " << pct(u.map.new_new) << ").";
    }
    if (u.rank1.compatible != u.map.compatible) {
      o << " On rank-1 the verdict is the opposite: " << pct(u.rank1.new_old) << " new→old against "
        << pct(u.rank1.old_old) << " old/old.";
    }
    o << "</li>\n";
  }
  o << "</ul>\n";
  return o.str();
}

std::string upgrades_section(const CompatibilityReport& rep) {
  if (rep.upgrades.empty()) return "";
  std::ostringstream o;
  o << "<table class=\"upgrades\">\n<thead><tr><th rowspan=\"2\">" << (single_old_model(rep) ? "new model" : "new→gallery")
    << "</th><th colspan=\"3\">mAP (%)</th>"
       "<th colspan=\"3\">rank-1 (%)</th><th rowspan=\"2\">gain (mAP)</th><th rowspan=\"2\">compatible</th></tr>\n"
       "<tr><th>old/old</th><th>new/new</th><th>new→old</th><th>old/old</th><th>new/new</th><th>new→old</th></tr>"
       "</thead>\n<tbody>\n";
  auto cell = [](double v, bool key) {
    char buf[48];
    std::snprintf(buf, sizeof buf, std::isfinite(v) ? "%.1f" : "n/a", 100 * v);
    return std::string(key ? "<td class=\"key\">" : "<td>") + buf + "</td>";
  };
  for (const auto& u : rep.upgrades) {
    o << "<tr><td>" << escape(upgrade_label(rep, u)) << "</td>" << cell(u.map.old_old, false) << cell(u.map.new_new, false)
      << cell(u.map.new_old, true) << cell(u.rank1.old_old, false) << cell(u.rank1.new_new, false)
      << cell(u.rank1.new_old, true) << "<td>" << gain_text(u.map.gain) << "</td><td class=\""
      << (u.map.compatible ? "yes\">yes" : "no\">no") << "</td></tr>\n";
  }
  o << "</tbody></table>\n<p class=\"note\">Compatible iff M(new→old) &gt; M(old/old) on mAP. Gain = (M(new→old) − "
       "M(old/old)) / (M(new/new) − M(old/old)): 0 is no better than the deployed model, 1 is as good as "
       "re-extracting the gallery.</p>\n";
  return o.str();
}

std::string matrix_figure(const CompatibilityReport& rep) {
  svg::Heatmap h;
  h.title = "Compatibility matrix: mAP (%)";
  h.x_label = "gallery model";
  h.y_label = "query model";
  h.rows = h.cols = rep.models;
  h.emphasis = rep.old_model;
  double lo = 100, hi = 0;
  for (const auto& row : rep.matrix) {
    h.values.emplace_back();
    for (const auto& m : row) {
      h.values.back().push_back(100 * m.map);
      if (std::isfinite(m.map)) lo = std::min(lo, 100 * m.map), hi = std::max(hi, 100 * m.map);
    }
  }
  // Colours span the data (rounded out to tens), so that 55 and 65 look different.
  if (lo <= hi) h.lo = std::floor(lo / 10) * 10, h.hi = std::max(h.lo + 10, std::ceil(hi / 10) * 10);
  return figure(svg::heatmap(h), "Every query model against every gallery model (mAP %). The deployed model is in bold; "
                                 "its column is the gallery that exists today.");
}

std::string mixed_figure(const CompatibilityReport& rep) {
  if (rep.upgrades.empty() || rep.upgrades.front().mixed.empty()) return "";
  svg::LineChart c;
  c.title = "Mixed gallery during the backfill";
  c.x_label = "fraction of gallery items still with old features";
  c.y_label = "mAP of new-model queries (%)";
  c.x_ticks = {0, 0.25, 0.5, 0.75, 1};
  for (size_t i = 0; i < rep.upgrades.size(); ++i) {
    svg::Series s{upgrade_label(rep, rep.upgrades[i]), {}, {}, kPalette[i % 8]};
    for (const auto& p : rep.upgrades[i].mixed) {
      s.x.push_back(p.old_fraction);
      s.y.push_back(100 * p.metrics.map);
    }
    c.series.push_back(s);
  }
  if (single_old_model(rep)) {  // with several old models there is no one reference line
    const double oo = 100 * rep.upgrades.front().old_old.map;
    c.series.push_back({"old/old (" + rep.old_model + ")", {0, 1}, {oo, oo}, "#333333", true, false});
  }
  return figure(svg::line_chart(c), "New-model queries against a gallery of which a fraction still carries the "
                                    "deployed model's features (right end: nothing re-extracted yet).");
}

std::string figures_section(const CompatibilityReport& rep) {
  return "<div class=\"grid\">\n" + (rep.matrix.empty() ? "" : matrix_figure(rep)) + mixed_figure(rep) + "</div>\n";
}

std::string cmc_section(const CompatibilityReport& rep) {
  if (rep.upgrades.empty()) return "";
  std::ostringstream o;
  o << "<div class=\"grid\">\n";
  for (const auto& u : rep.upgrades) {
    svg::LineChart c;
    const std::string gallery = u.gallery_model.empty() ? rep.old_model : u.gallery_model;
    c.title = "CMC: " + u.new_model + " vs " + gallery;
    c.x_label = "rank k";
    c.y_label = "first match at rank ≤ k (%)";
    c.log_x = true;
    c.x_ticks = {1, 2, 5, 10, 20, 50};
    const std::pair<const char*, const eval::Metrics*> cases[] = {
        {"old/old", &u.old_old}, {"new/new", &u.new_new}, {"new→old", &u.new_old}};
    const char* colours[] = {kOldColour, kNewColour, kCrossColour};
    for (int i = 0; i < 3; ++i) {
      svg::Series s{cases[i].first, {}, {}, colours[i]};
      s.markers = false;
      for (size_t k = 0; k < cases[i].second->cmc.size(); ++k) {
        s.x.push_back(static_cast<double>(k + 1));
        s.y.push_back(100 * cases[i].second->cmc[k]);
      }
      c.series.push_back(s);
    }
    o << figure(svg::line_chart(c), "new/new: " + u.new_model + " queries and gallery; new→old: " + u.new_model +
                                        " queries, " + gallery + " gallery.");
  }
  o << "</div>\n";
  return o.str();
}

std::string matrix_table(const CompatibilityReport& rep, const char* what, double eval::Metrics::*field) {
  std::ostringstream o;
  o << "<table class=\"matrix\">\n<caption>" << what << " (%), rows: query model, columns: gallery model</caption>\n"
    << "<thead><tr><th>query \\ gallery</th>";
  for (const auto& m : rep.models) o << "<th>" << escape(m) << "</th>";
  o << "</tr></thead>\n<tbody>\n";
  for (size_t q = 0; q < rep.models.size(); ++q) {
    o << "<tr><th>" << escape(rep.models[q]) << "</th>";
    for (size_t g = 0; g < rep.models.size(); ++g) o << "<td>" << percent(rep.matrix[q][g].*field) << "</td>";
    o << "</tr>\n";
  }
  o << "</tbody></table>\n";
  return o.str();
}

std::string tables_section(const CompatibilityReport& rep) {
  std::ostringstream o;
  o << "<details><summary>All numbers (matrices, mINP, TAR@FAR, mixed galleries)</summary>\n";
  if (!rep.matrix.empty()) {
    o << matrix_table(rep, "mAP", &eval::Metrics::map) << matrix_table(rep, "Rank-1", &eval::Metrics::rank1);
  }
  if (!rep.upgrades.empty()) {
    o << "<table>\n<caption>Every case of every upgrade (%)</caption>\n<thead><tr><th>new model</th><th>case</th>"
         "<th>mAP</th><th>rank-1</th><th>rank-5</th><th>rank-10</th><th>mINP</th><th>TAR@FAR=1e-4</th>"
         "<th>TAR@FAR=1e-3</th><th>TAR@FAR=1e-2</th></tr></thead>\n<tbody>\n";
    for (const auto& u : rep.upgrades) {
      const std::pair<const char*, const eval::Metrics*> cases[] = {
          {"old/old", &u.old_old}, {"new/new", &u.new_new}, {"new→old", &u.new_old}};
      for (const auto& [name, m] : cases) {
        o << "<tr><td>" << escape(upgrade_label(rep, u)) << "</td><td>" << name << "</td><td>" << percent(m->map) << "</td><td>"
          << percent(m->rank1) << "</td><td>" << percent(m->rank5) << "</td><td>" << percent(m->rank10) << "</td><td>"
          << percent(m->minp) << "</td>";
        for (double t : m->tar_at_far) o << "<td>" << percent(t) << "</td>";
        o << "</tr>\n";
      }
    }
    o << "</tbody></table>\n";
    const auto& first = rep.upgrades.front().mixed;
    if (!first.empty()) {
      o << "<table>\n<caption>Mixed gallery: mAP (%) of new-model queries, fraction r of the gallery still "
        << (single_old_model(rep) ? escape(rep.old_model) : "with the old model's features")
        << "</caption>\n<thead><tr><th>" << (single_old_model(rep) ? "new model" : "new→gallery") << "</th>";
      for (const auto& p : first) o << "<th>r = " << p.old_fraction << "</th>";
      o << "</tr></thead>\n<tbody>\n";
      for (const auto& u : rep.upgrades) {
        o << "<tr><td>" << escape(upgrade_label(rep, u)) << "</td>";
        for (const auto& p : u.mixed) o << "<td>" << percent(p.metrics.map) << "</td>";
        o << "</tr>\n";
      }
      o << "</tbody></table>\n";
    }
  }
  o << "</details>\n";
  return o.str();
}

/// Galleries holding several generations at once (eval --lineage / --mix): one row each.
std::string generations_section(const CompatibilityReport& rep) {
  if (rep.generation_mixes.empty()) return "";
  std::ostringstream o;
  o << "<p>A gallery that still holds older generations: each item carries the features of one of the listed "
       "models, in the given shares, and is searched with the query model's features.</p>\n<table>\n"
       "<thead><tr><th>query model</th><th style=\"text-align: left\">gallery</th><th>mAP (%)</th><th>rank-1 (%)</th>"
       "</tr></thead>\n<tbody>\n";
  auto one_decimal = [](double fraction) {
    char buf[32];
    std::snprintf(buf, sizeof buf, std::isfinite(fraction) ? "%.1f" : "n/a", 100 * fraction);
    return std::string(buf);
  };
  for (const auto& g : rep.generation_mixes) {
    o << "<tr><td>" << escape(g.spec.query_model) << "</td><td style=\"text-align: left\">";
    for (size_t k = 0; k < g.spec.galleries.size(); ++k)
      o << (k ? " + " : "") << escape(g.spec.galleries[k]) << " " << pct(g.spec.fractions[k]);
    o << "</td><td>" << one_decimal(g.metrics.map) << "</td><td>" << one_decimal(g.metrics.rank1) << "</td></tr>\n";
  }
  o << "</tbody></table>\n";
  return o.str();
}

std::string about_section(const CompatibilityReport& rep) {
  const auto& p = provenance();
  std::ostringstream o;
  o << "<ul class=\"about\">\n<li>Protocol <code>" << escape(rep.protocol) << "</code>: "
    << (rep.protocol == "loo" ? "leave-one-out, each item queries all others"
                              : "query/gallery splits; same id + same camera and junk excluded")
    << ". " << rep.num_query << " queries, " << rep.num_gallery << " gallery items";
  if (!rep.matrix.empty() && !rep.matrix[0].empty())
    o << " (" << rep.matrix[0][0].queries << " evaluated, " << rep.matrix[0][0].skipped << " skipped)";
  o << ".</li>\n<li>Models:";
  for (size_t i = 0; i < rep.models.size(); ++i)
    o << (i ? "," : "") << " <code>" << escape(rep.models[i]) << "</code> (d = " << rep.dims[i] << ")";
  o << ". Cosine similarity of L2-normalised features; models of different sizes are compared on their first "
       "min(d) components. Mixed-gallery seed "
    << rep.seed << ".</li>\n<li>Produced by dualtune " << escape(p.version) << " (git " << escape(p.git_revision)
    << "), libtorch " << escape(p.libtorch) << ", FAISS " << escape(p.faiss) << ", OpenCV " << escape(p.opencv)
    << ". The same numbers are in report.json and report.md beside this file.</li>\n</ul>\n";
  return o.str();
}

struct Section {
  const char* id;
  const char* title;  ///< "" = no heading
  std::function<std::string(const CompatibilityReport&)> body;
};

const std::vector<Section>& sections() {
  static const std::vector<Section> s{
      {"verdict", "", verdict_section},
      {"upgrades", "Upgrades", upgrades_section},
      {"figures", "Compatibility matrix and mixed galleries", figures_section},
      {"generations", "Galleries of several generations", generations_section},
      {"cmc", "CMC curves", cmc_section},
      {"tables", "Tables", tables_section},
      {"about", "How these numbers were made", about_section},
  };
  return s;
}

const char* kStyle = R"(
body { margin: 0; background: #f5f6f8; color: #1f2328; font: 15px/1.45 "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 18px 28px 40px; }
h1 { font-size: 24px; margin: 4px 0 2px; }
h2 { font-size: 18px; margin: 26px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #d8dbe0; }
.sub { color: #57606a; margin: 0 0 14px; }
.headline { font-size: 18px; margin: 8px 0 10px; padding: 12px 16px; background: #fff; border-radius: 6px;
            border-left: 6px solid #999; }
.headline.good { border-left-color: #1a7f37; } .headline.bad { border-left-color: #cf222e; }
.headline.mixed { border-left-color: #bf8700; }
ul.verdicts { list-style: none; padding: 0; margin: 0; }
ul.verdicts li { background: #fff; border-radius: 6px; padding: 8px 14px; margin: 6px 0; }
.badge { display: inline-block; font-size: 12px; font-weight: bold; padding: 1px 8px; border-radius: 10px;
         margin-right: 6px; color: #fff; }
li.good .badge { background: #1a7f37; } li.bad .badge { background: #cf222e; }
table { border-collapse: collapse; background: #fff; margin: 8px 0 14px; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: bold; padding: 4px 0; }
th, td { padding: 5px 12px; border-bottom: 1px solid #e3e5e8; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #eef0f3; white-space: nowrap; }
table.upgrades thead th { text-align: center; } table.upgrades td + td { text-align: right; }
td.key { font-weight: bold; } td.yes { color: #1a7f37; font-weight: bold; } td.no { color: #cf222e; font-weight: bold; }
.note { color: #57606a; font-size: 13px; margin: 0; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 16px; align-items: start; }
figure { margin: 0; background: #fff; border: 1px solid #e0e3e7; border-radius: 6px; padding: 10px; text-align: center; }
figure img { max-width: 100%; height: auto; }
figcaption { color: #57606a; font-size: 13px; text-align: left; margin-top: 4px; }
details summary { cursor: pointer; font-weight: bold; margin: 6px 0; }
ul.about { color: #444c56; font-size: 14px; }
code { background: #eef0f3; padding: 0 4px; border-radius: 3px; }
)";

// Marks the page once every figure decoded (the browser test reads these attributes).
const char* kRenderCheck = R"(
window.addEventListener('load', function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; ++i) if (imgs[i].complete && imgs[i].naturalWidth > 0) ++ok;
  document.body.setAttribute('data-figures', ok + '/' + imgs.length);
  document.body.setAttribute('data-rendered', ok === imgs.length ? 'all' : 'missing');
});
)";

}  // namespace

std::string html_report(const CompatibilityReport& rep) {
  std::ostringstream o;
  o << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    << "<title>Compatibility report: " << escape(rep.old_model) << " and its upgrades</title>\n<style>" << kStyle
    << "</style>\n<script>" << kRenderCheck << "</script>\n</head>\n<body>\n<main>\n"
    << "<h1>Compatibility report</h1>\n<p class=\"sub\">Deployed model <code>" << escape(rep.old_model) << "</code>, "
    << rep.upgrades.size() << " upgrade" << (rep.upgrades.size() == 1 ? "" : "s") << ", protocol <code>"
    << escape(rep.protocol) << "</code>, " << rep.num_query << " queries.</p>\n";
  for (const auto& s : sections()) {
    const std::string body = s.body(rep);
    if (body.empty()) continue;
    o << "<section id=\"" << s.id << "\">\n";
    if (*s.title) o << "<h2>" << s.title << "</h2>\n";
    o << body << "</section>\n";
  }
  o << "</main>\n</body>\n</html>\n";
  return o.str();
}

}  // namespace dualtune::report

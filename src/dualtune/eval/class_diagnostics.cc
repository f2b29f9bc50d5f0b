#include "dualtune/eval/class_diagnostics.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <map>

#include "dualtune/eval/similarity.h"
#include "dualtune/util/error.h"

namespace dualtune::eval {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Per-query quantities, in the order of Sums::v.
enum Field { kApOO, kApNN, kApNO, kTop1OO, kTop1NN, kTop1NO, kCentreOld, kCentreNew, kNnOld, kNnNew, kFields };

// Sums and counts of the per-query fields (NaN values are left out).
struct Sums {
  std::array<double, kFields> v{};
  std::array<int64_t, kFields> n{};
  void add(Field f, double x) {
    if (std::isnan(x)) return;
    v[f] += x;
    ++n[f];
  }
  void merge(const Sums& o) {
    for (int f = 0; f < kFields; ++f) v[f] += o.v[f], n[f] += o.n[f];
  }
  double mean(Field f) const { return n[f] > 0 ? v[f] / static_cast<double>(n[f]) : kNaN; }
};

DiagnosticValues values_of(const Sums& s, int64_t queries, double alignment, double own_rank1) {
  DiagnosticValues d;
  d.queries = queries;
  d.ap_old_old = s.mean(kApOO);
  d.ap_new_new = s.mean(kApNN);
  d.ap_new_old = s.mean(kApNO);
  d.top1_old_old = s.mean(kTop1OO);
  d.top1_new_new = s.mean(kTop1NN);
  d.top1_new_old = s.mean(kTop1NO);
  d.centre_margin_old = s.mean(kCentreOld);
  d.centre_margin_new = s.mean(kCentreNew);
  d.nn_margin_old = s.mean(kNnOld);
  d.nn_margin_new = s.mean(kNnNew);
  d.alignment = alignment;
  d.own_mean_rank1 = own_rank1;
  return d;
}

double dot(const float* a, const float* b, int64_t k) {
  double s = 0;
  for (int64_t t = 0; t < k; ++t) s += static_cast<double>(a[t]) * b[t];
  return s;
}

// NN margin of every query row x_i against the old gallery ô (leave-one-out).
std::vector<double> nn_margins(int64_t n, const float* x, const float* old_hat, int64_t k,
                               const std::vector<int64_t>& labels, int64_t max_block_bytes) {
  std::vector<double> out(static_cast<size_t>(n), kNaN);
  const float lowest = -std::numeric_limits<float>::infinity();
  for_each_similarity_block(n, x, n, old_hat, k, max_block_bytes, [&](int64_t q0, int64_t rows, const float* S) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i = q0 + r;
      const int64_t y = labels[static_cast<size_t>(i)];
      if (y < 0) continue;
      float pos = lowest, neg = lowest;
      const float* s = S + r * n;
      for (int64_t j = 0; j < n; ++j) {
        const int64_t l = labels[static_cast<size_t>(j)];
        if (j == i || l < 0) continue;
        if (l == y) pos = std::max(pos, s[j]);
        else neg = std::max(neg, s[j]);
      }
      if (pos > lowest && neg > lowest) out[static_cast<size_t>(i)] = static_cast<double>(pos) - neg;
    }
  });
  return out;
}

}  // namespace

UpgradeDiagnostics diagnose_upgrade(const features::FeatureSet& old_f, const features::FeatureSet& new_f,
                                    const std::string& old_name, const std::string& new_name,
                                    const std::set<std::string>& seen_classes, const EvalOptions& opt,
                                    const CompatibilityReport* known) {
  DT_CHECK(opt.protocol == "loo", "class diagnostics: expected the leave-one-out protocol, found '", opt.protocol,
           "'");
  old_f.check();
  new_f.check();
  DT_CHECK(old_f.n == new_f.n && old_f.labels == new_f.labels, "class diagnostics: expected '", new_name,
           "' to describe the same items as '", old_name, "' (", old_f.n, " items, same labels, same order), found ",
           new_f.n, " items", old_f.n == new_f.n ? " with different labels" : "");
  DT_CHECK(old_f.d > 0 && new_f.d > 0, "class diagnostics: expected positive feature dimensions, found old d = ",
           old_f.d, ", new d = ", new_f.d);
  set_num_threads(opt.threads);
  const int64_t n = old_f.n, k = std::min(old_f.d, new_f.d);
  const auto& labels = old_f.labels;
  const std::vector<float> oh = normalized_prefix(n, old_f.d, old_f.features.data(), k);
  const std::vector<float> nh = normalized_prefix(n, new_f.d, new_f.features.data(), k);

  // Classes (labels >= 0, ascending) and their old / new sums of normalised features.
  std::map<int64_t, int64_t> index;
  for (int64_t l : labels) {
    if (l >= 0) index.emplace(l, 0);
  }
  std::vector<int64_t> class_label;
  for (auto& [l, c] : index) {
    c = static_cast<int64_t>(class_label.size());
    class_label.push_back(l);
  }
  const int64_t nc = static_cast<int64_t>(class_label.size());
  std::vector<float> old_sum(static_cast<size_t>(nc * k), 0.f), new_sum(static_cast<size_t>(nc * k), 0.f);
  std::vector<int64_t> items(static_cast<size_t>(nc), 0);
  std::vector<int64_t> cls(static_cast<size_t>(n), -1);
  for (int64_t i = 0; i < n; ++i) {
    if (labels[static_cast<size_t>(i)] < 0) continue;
    const int64_t c = index.at(labels[static_cast<size_t>(i)]);
    cls[static_cast<size_t>(i)] = c;
    ++items[static_cast<size_t>(c)];
    for (int64_t t = 0; t < k; ++t) {
      old_sum[static_cast<size_t>(c * k + t)] += oh[static_cast<size_t>(i * k + t)];
      new_sum[static_cast<size_t>(c * k + t)] += nh[static_cast<size_t>(i * k + t)];
    }
  }
  std::vector<double> old_sum_norm(static_cast<size_t>(nc));
  for (int64_t c = 0; c < nc; ++c) {
    const float* s = &old_sum[static_cast<size_t>(c * k)];
    old_sum_norm[static_cast<size_t>(c)] = std::sqrt(dot(s, s, k));
  }

  // Per-query AP and first ranks of the three cases.
  EvalOptions eo = opt;
  eo.tar_far = false;
  // A leave-one-out report's case (q, g) ranked q's items against g's: these same sets.
  auto case_results = [&](const features::FeatureSet& q, const features::FeatureSet& g, const std::string& qn,
                          const std::string& gn) {
    if (known && known->protocol == "loo" && known->max_block_bytes == opt.max_block_bytes) {
      const auto it = known->case_queries.find({qn, gn});
      if (it != known->case_queries.end() && static_cast<int64_t>(it->second.ap.size()) == n) return it->second;
    }
    QueryResults r(n);
    evaluate_case(q, g, eo, nullptr, &r);
    return r;
  };
  const QueryResults oo = case_results(old_f, old_f, old_name, old_name);
  const QueryResults nn = case_results(new_f, new_f, new_name, new_name);
  const QueryResults no = case_results(new_f, old_f, new_name, old_name);

  // Centre margins: x_i against the old class means, own class without item i.
  auto centre_margin = [&](const float* x, int64_t i) {
    const int64_t y = cls[static_cast<size_t>(i)];
    if (y < 0 || items[static_cast<size_t>(y)] < 2 || nc < 2) return kNaN;
    const float* oi = &oh[static_cast<size_t>(i * k)];
    const float* cy = &old_sum[static_cast<size_t>(y * k)];
    const double own_norm2 = old_sum_norm[static_cast<size_t>(y)] * old_sum_norm[static_cast<size_t>(y)] -
                             2 * dot(cy, oi, k) + dot(oi, oi, k);
    if (own_norm2 <= 1e-12) return kNaN;
    const double own = (dot(x, cy, k) - dot(x, oi, k)) / std::sqrt(own_norm2);
    double other = -std::numeric_limits<double>::infinity();
    for (int64_t c = 0; c < nc; ++c) {
      if (c == y || old_sum_norm[static_cast<size_t>(c)] <= 0) continue;
      other = std::max(other, dot(x, &old_sum[static_cast<size_t>(c * k)], k) / old_sum_norm[static_cast<size_t>(c)]);
    }
    return std::isfinite(other) ? own - other : kNaN;
  };
  const std::vector<double> nn_old = nn_margins(n, oh.data(), oh.data(), k, labels, opt.max_block_bytes);
  const std::vector<double> nn_new = nn_margins(n, nh.data(), oh.data(), k, labels, opt.max_block_bytes);

  std::vector<Sums> sums(static_cast<size_t>(nc));
  std::vector<int64_t> queries(static_cast<size_t>(nc), 0);
  std::vector<double> centre_old(static_cast<size_t>(n), kNaN), centre_new(static_cast<size_t>(n), kNaN);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    centre_old[static_cast<size_t>(i)] = centre_margin(&oh[static_cast<size_t>(i * k)], i);
    centre_new[static_cast<size_t>(i)] = centre_margin(&nh[static_cast<size_t>(i * k)], i);
  }
  for (int64_t i = 0; i < n; ++i) {
    const auto u = static_cast<size_t>(i);
    if (cls[u] < 0 || oo.first_rank[u] == 0) continue;  // junk, or no positive in the gallery
    Sums& s = sums[static_cast<size_t>(cls[u])];
    ++queries[static_cast<size_t>(cls[u])];
    s.add(kApOO, oo.ap[u]);
    s.add(kApNN, nn.ap[u]);
    s.add(kApNO, no.ap[u]);
    s.add(kTop1OO, oo.first_rank[u] == 1 ? 1.0 : 0.0);
    s.add(kTop1NN, nn.first_rank[u] == 1 ? 1.0 : 0.0);
    s.add(kTop1NO, no.first_rank[u] == 1 ? 1.0 : 0.0);
    s.add(kCentreOld, centre_old[u]);
    s.add(kCentreNew, centre_new[u]);
    s.add(kNnOld, nn_old[u]);
    s.add(kNnNew, nn_new[u]);
  }

  // Alignment of each class's new mean direction with its old one.
  std::vector<double> alignment(static_cast<size_t>(nc), kNaN), own_rank1(static_cast<size_t>(nc), kNaN);
  for (int64_t c = 0; c < nc; ++c) {
    const float* m = &new_sum[static_cast<size_t>(c * k)];
    const double mn = std::sqrt(dot(m, m, k));
    if (mn <= 0 || old_sum_norm[static_cast<size_t>(c)] <= 0) continue;
    alignment[static_cast<size_t>(c)] =
        dot(m, &old_sum[static_cast<size_t>(c * k)], k) / (mn * old_sum_norm[static_cast<size_t>(c)]);
    int64_t best = -1;
    double best_cos = -std::numeric_limits<double>::infinity();
    for (int64_t o = 0; o < nc; ++o) {
      if (old_sum_norm[static_cast<size_t>(o)] <= 0) continue;
      const double cs = dot(m, &old_sum[static_cast<size_t>(o * k)], k) / old_sum_norm[static_cast<size_t>(o)];
      if (cs > best_cos) best_cos = cs, best = o;
    }
    own_rank1[static_cast<size_t>(c)] = best == c ? 1.0 : 0.0;
  }

  UpgradeDiagnostics out;
  out.old_model = old_name;
  out.new_model = new_name;
  for (int64_t c = 0; c < nc; ++c) {
    const auto u = static_cast<size_t>(c);
    ClassDiagnostics d;
    d.label = class_label[u];
    d.name = d.label < static_cast<int64_t>(old_f.class_names.size()) ? old_f.class_names[static_cast<size_t>(d.label)]
                                                                      : std::to_string(d.label);
    d.seen = seen_classes.count(d.name) > 0;
    d.items = items[u];
    d.values = values_of(sums[u], queries[u], alignment[u], own_rank1[u]);
    out.classes.push_back(std::move(d));
  }
  auto group = [&](const std::string& name, int want) {  // want: -1 all, 1 seen, 0 unseen
    GroupDiagnostics g;
    g.name = name;
    Sums s;
    int64_t q = 0, na = 0, nr = 0;
    double a = 0, r = 0;
    for (int64_t c = 0; c < nc; ++c) {
      const auto u = static_cast<size_t>(c);
      if (want >= 0 && out.classes[u].seen != (want == 1)) continue;
      ++g.classes;
      s.merge(sums[u]);
      q += queries[u];
      if (!std::isnan(alignment[u])) a += alignment[u], ++na;
      if (!std::isnan(own_rank1[u])) r += own_rank1[u], ++nr;
    }
    g.values = values_of(s, q, na ? a / static_cast<double>(na) : kNaN, nr ? r / static_cast<double>(nr) : kNaN);
    return g;
  };
  out.groups.push_back(group("all", -1));
  const auto seen = group("seen by the old model", 1), unseen = group("unseen by the old model", 0);
  if (seen.classes > 0 && unseen.classes > 0) {
    out.groups.push_back(seen);
    out.groups.push_back(unseen);
  }
  return out;
}

std::vector<UpgradeDiagnostics> diagnose_all(const std::vector<ModelFeatures>& models, const std::string& old_name,
                                             const std::set<std::string>& seen_classes, const EvalOptions& opt,
                                             const CompatibilityReport* known) {
  const auto old_it = std::find_if(models.begin(), models.end(), [&](const ModelFeatures& m) { return m.name == old_name; });
  DT_CHECK(old_it != models.end(), "class diagnostics: old model '", old_name, "' is not among the models given");
  // The report ranked each model's queries against each model's gallery, the diagnostics
  // query sets against query sets: the same cases where every model's two sets are one.
  const bool one_set = known && std::all_of(models.begin(), models.end(), [](const ModelFeatures& m) {
    return m.query.features == m.gallery.features && m.query.labels == m.gallery.labels;
  });
  std::vector<UpgradeDiagnostics> out;
  for (const auto& m : models) {
    if (m.name == old_name) continue;
    out.push_back(diagnose_upgrade(old_it->query, m.query, old_name, m.name, seen_classes, opt,
                                   one_set ? known : nullptr));
  }
  return out;
}

}  // namespace dualtune::eval

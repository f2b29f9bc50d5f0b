#include "dualtune/eval/evaluate.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>
#include <unordered_map>

#include "dualtune/eval/mixed_gallery.h"
#include "dualtune/eval/protocol.h"
#include "dualtune/eval/ranking.h"
#include "dualtune/eval/similarity.h"
#include "dualtune/eval/tar_far.h"
#include "dualtune/util/error.h"

namespace dualtune::eval {
namespace {

const std::vector<int64_t>& cams_or_unknown(const features::FeatureSet& s, std::vector<int64_t>& storage) {
  if (!s.cams.empty()) return s.cams;
  storage.assign(static_cast<size_t>(s.n), -1);
  return storage;
}

/// Σ over queries with label >= 0 of #{gallery items with label >= 0 and a different label}.
/// The protocols' exclusions (self, same id + cam) only remove same-label items, so
/// this is the exact number of impostor pairs.
int64_t count_impostor_pairs(const std::vector<int64_t>& qlabels, const std::vector<int64_t>& glabels) {
  std::unordered_map<int64_t, int64_t> per_label;
  int64_t valid = 0;
  for (int64_t l : glabels) {
    if (l >= 0) {
      ++valid;
      ++per_label[l];
    }
  }
  int64_t total = 0;
  for (int64_t l : qlabels) {
    if (l < 0) continue;
    auto it = per_label.find(l);
    total += valid - (it == per_label.end() ? 0 : it->second);
  }
  return total;
}

std::string fmt_pct(double x) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(2) << 100 * x;
  return os.str();
}

// One query set against one gallery, normalised, with the protocol's roles.
struct Case {
  Protocol protocol;
  const features::FeatureSet& query;
  const features::FeatureSet& gallery;
  int64_t nq, ng, d;
  std::vector<float> qn, gn;
  const std::vector<int64_t>& qcams;
  const std::vector<int64_t>& gcams;

  void roles(int64_t i, Role* out) const {
    gallery_roles(protocol, i, query.labels[i], qcams[i], ng, gallery.labels.data(), gcams.data(), out);
  }
};

// Verification pairs of the queries `rows` (all when empty), counted with `windows`. With
// the rows of the main pass (all, same block size) the scores are bit for bit the same.
TarFarCounter count_tar_far(const Case& c, const std::vector<int64_t>& rows, const TarFarWindows& windows,
                            int64_t max_block_bytes, int nthreads) {
  const bool all = rows.empty();
  std::vector<float> sub;
  if (!all) {
    sub.resize(rows.size() * static_cast<size_t>(c.d));
    for (size_t r = 0; r < rows.size(); ++r)
      std::copy_n(c.qn.data() + rows[r] * c.d, c.d, sub.data() + r * static_cast<size_t>(c.d));
  }
  const int64_t n = all ? c.nq : static_cast<int64_t>(rows.size());
  std::vector<TarFarCounter> counters;
  for (int t = 0; t < nthreads; ++t) counters.emplace_back(windows);
  for_each_similarity_block(n, all ? c.qn.data() : sub.data(), c.ng, c.gn.data(), c.d, max_block_bytes,
                            [&](int64_t q0, int64_t nrows, const float* S) {
#pragma omp parallel num_threads(nthreads)
    {
      std::vector<Role> roles(static_cast<size_t>(c.ng));
      TarFarCounter& counter = counters[static_cast<size_t>(omp_get_thread_num())];
#pragma omp for schedule(dynamic, 8)
      for (int64_t r = 0; r < nrows; ++r) {
        const int64_t i = all ? q0 + r : rows[static_cast<size_t>(q0 + r)];
        if (c.query.labels[i] < 0) continue;
        c.roles(i, roles.data());
        counter.add_row(c.ng, S + r * c.ng, roles.data());
      }
    }
  });
  for (int t = 1; t < nthreads; ++t) counters[0].merge(counters[static_cast<size_t>(t)]);
  return std::move(counters[0]);
}

// Where the thresholds will be: the pairs of kSampleQueries queries spread evenly over
// the query set (all of them when there are fewer), surveyed in kSampleParts interleaved
// parts whose disagreement sizes each window (predict_windows). A window holds exact
// counts only for the keys that received a pair, at most 1 MiB per bin and thread: the
// widest window is 16 bins on up to 4 threads, 4 bins from 16 threads on (64 MiB per
// target over all threads, where many threads make a missed window's extra passes cheap).
// On the demo's 10,000-image cases the 4-bin windows of a 256-query sample missed 12 of
// 37 cases (2 more passes over every pair each); sized by the parts, 1.
constexpr int64_t kSampleQueries = 256;
constexpr int kSampleParts = 4;
constexpr uint32_t kMinWindowBins = 4, kMaxWindowBins = 16, kWindowBinsAllThreads = 64;

TarFarWindows predict_tar_far_windows(const Case& c, int64_t max_block_bytes, int nthreads) {
  const int64_t n = std::min(c.nq, kSampleQueries);
  if (n == 0) return {};
  std::vector<TarFarCounter> parts;
  for (int p = 0; p < kSampleParts; ++p) {
    std::vector<int64_t> rows;
    for (int64_t r = p; r < n; r += kSampleParts) rows.push_back(r * c.nq / n);
    if (rows.empty()) continue;
    // Any block size predicts: at least 1 MiB blocks, however small the caller's.
    parts.push_back(count_tar_far(c, rows, TarFarWindows{}, std::max<int64_t>(max_block_bytes, int64_t(1) << 20), nthreads));
  }
  const uint32_t max_bins = std::clamp<uint32_t>(kWindowBinsAllThreads / static_cast<uint32_t>(std::max(1, nthreads)),
                                                 kMinWindowBins, kMaxWindowBins);
  return predict_windows(parts, kMinWindowBins, max_bins);
}

}  // namespace

Metrics evaluate_case(const features::FeatureSet& query, const features::FeatureSet& gallery, const EvalOptions& opt,
                      std::vector<Top1>* top1, QueryResults* per_query) {
  const Protocol protocol = parse_protocol(opt.protocol);
  query.check();
  gallery.check();
  DT_CHECK(query.d > 0 && gallery.d > 0, "evaluate: expected positive feature dimensions, found query d = ", query.d,
           ", gallery d = ", gallery.d);
  DT_CHECK(opt.max_block_bytes > 0, "evaluate: expected max_block_bytes > 0, found ", opt.max_block_bytes);
  if (protocol == Protocol::kLeaveOneOut) {
    DT_CHECK(query.n == gallery.n, "evaluate (loo): expected query and gallery to be the same items, found ", query.n,
             " queries vs ", gallery.n, " gallery items");
    DT_CHECK(query.labels == gallery.labels,
             "evaluate (loo): expected identical labels for query and gallery (same items, same order)");
  }
  set_num_threads(opt.threads);
  const int64_t d = std::min(query.d, gallery.d);
  std::vector<int64_t> qcams_store, gcams_store;
  const Case c{protocol,
               query,
               gallery,
               query.n,
               gallery.n,
               d,
               normalized_prefix(query.n, query.d, query.features.data(), d),
               normalized_prefix(gallery.n, gallery.d, gallery.features.data(), d),
               cams_or_unknown(query, qcams_store),
               cams_or_unknown(gallery, gcams_store)};
  const int64_t nq = c.nq, ng = c.ng;

  const int nthreads = std::max(1, omp_get_max_threads());
  const TarFarWindows windows = opt.tar_far ? predict_tar_far_windows(c, opt.max_block_bytes, nthreads) : TarFarWindows{};
  std::vector<TarFarCounter> tar;
  for (int t = 0; opt.tar_far && t < nthreads; ++t) tar.emplace_back(windows);
  QueryResults results(nq);

  for_each_similarity_block(nq, c.qn.data(), ng, c.gn.data(), d, opt.max_block_bytes,
                            [&](int64_t q0, int64_t rows, const float* S) {
#pragma omp parallel num_threads(nthreads)
    {
      std::vector<Role> roles(static_cast<size_t>(ng));
      RankScratch scratch;
      std::vector<int64_t> ranks;
      const int t = omp_get_thread_num();
#pragma omp for schedule(dynamic, 8)
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t i = q0 + r;
        if (query.labels[i] < 0) continue;  // unlabelled query: skipped
        const float* s = S + r * ng;
        c.roles(i, roles.data());
        if (opt.tar_far) tar[static_cast<size_t>(t)].add_row(ng, s, roles.data());
        positive_ranks(ng, s, roles.data(), scratch, ranks);
        if (ranks.empty()) continue;  // no valid positive: skipped
        results.first_rank[i] = ranks.front();
        results.ap[i] = average_precision(ranks);
        results.inp[i] = inverse_negative_penalty(ranks);
      }
    }
  });

  Metrics m = reduce_query_results(results);
  if (top1) *top1 = top1_outcomes(results.first_rank);
  if (per_query) *per_query = results;
  if (opt.tar_far) {
    for (int t = 1; t < nthreads; ++t) tar[0].merge(tar[static_cast<size_t>(t)]);
    const int64_t num_impostors = count_impostor_pairs(query.labels, gallery.labels);
    DT_CHECK(tar[0].num_impostors() == num_impostors, "evaluate: internal error: expected ", num_impostors,
             " impostor pairs, counted ", tar[0].num_impostors());
    const TarFarCounter first = std::move(tar[0]);
    tar.clear();
    // A threshold outside the predicted windows: the same blocks again (bit-identical scores).
    const TarFarResult r = resolve_tar_far(first, [&](const TarFarWindows& w) {
      return count_tar_far(c, {}, w, opt.max_block_bytes, nthreads);
    });
    for (int f = 0; f < 3; ++f) m.tar_at_far[f] = r.tar[f];
  } else {
    for (double& t : m.tar_at_far) t = std::nan("");
  }
  return m;
}

ModelFeatures loo_model(std::string name, features::FeatureSet set) {
  ModelFeatures m;
  m.name = std::move(name);
  m.query = set;
  m.gallery = std::move(set);
  return m;
}

CompatibilityReport evaluate_compatibility(const std::vector<ModelFeatures>& models, const std::string& old_name,
                                           const EvalOptions& opt) {
  DT_CHECK(!models.empty(), "evaluate_compatibility: expected at least one model, found none");
  parse_protocol(opt.protocol);
  CompatibilityReport rep;
  rep.protocol = opt.protocol;
  rep.seed = opt.seed;
  rep.max_block_bytes = opt.max_block_bytes;
  rep.old_model = old_name.empty() ? models.front().name : old_name;
  int64_t old_index = -1;
  for (size_t i = 0; i < models.size(); ++i) {
    const ModelFeatures& m = models[i];
    for (size_t j = 0; j < i; ++j) {
      DT_CHECK(models[j].name != m.name, "evaluate_compatibility: model name '", m.name, "' given twice");
    }
    const ModelFeatures& ref = models.front();
    DT_CHECK(m.query.n == ref.query.n && m.query.labels == ref.query.labels && m.query.cams == ref.query.cams,
             "evaluate_compatibility: expected model '", m.name, "' to have the same query items as '", ref.name,
             "' (", ref.query.n, " items, same labels/cams, same order), found ", m.query.n, " items",
             m.query.n == ref.query.n ? " with different labels or cams" : "");
    DT_CHECK(m.gallery.n == ref.gallery.n && m.gallery.labels == ref.gallery.labels &&
                 m.gallery.cams == ref.gallery.cams,
             "evaluate_compatibility: expected model '", m.name, "' to have the same gallery items as '", ref.name,
             "' (", ref.gallery.n, " items, same labels/cams, same order), found ", m.gallery.n, " items",
             m.gallery.n == ref.gallery.n ? " with different labels or cams" : "");
    rep.models.push_back(m.name);
    rep.dims.push_back(m.query.d);
    if (m.name == rep.old_model) old_index = static_cast<int64_t>(i);
  }
  DT_CHECK(old_index >= 0, "evaluate_compatibility: old model '", rep.old_model, "' is not among the models given");
  rep.num_query = models.front().query.n;
  rep.num_gallery = models.front().gallery.n;

  auto report = [&](const std::string& what, const Metrics& m) {
    if (opt.progress) opt.progress(what + ": mAP " + fmt_pct(m.map) + ", rank-1 " + fmt_pct(m.rank1));
  };
  const size_t nm = models.size();
  auto index_of = [&](const std::string& name, const char* role) {
    for (size_t i = 0; i < nm; ++i)
      if (models[i].name == name) return i;
    std::string names;
    for (const auto& m : models) names += (names.empty() ? "" : ", ") + m.name;
    DT_THROW("evaluate_compatibility: ", role, " '", name, "' is not among the models given (", names, ")");
  };
  std::vector<UpgradeSpec> upgrades = opt.upgrades;
  if (upgrades.empty()) {
    for (size_t i = 0; i < nm; ++i)
      if (static_cast<int64_t>(i) != old_index) upgrades.push_back({models[i].name, rep.old_model, ""});
  }
  for (const auto& u : upgrades) {
    index_of(u.new_model, "new model");
    index_of(u.old_model, "old model");
    if (!u.gallery.empty()) index_of(u.gallery, "gallery model");
  }
  rep.matrix.assign(nm, std::vector<Metrics>(nm));
  // Per-query top-1 of every case: the flips' inputs (one byte per query and case).
  std::vector<std::vector<std::vector<Top1>>> top1(nm, std::vector<std::vector<Top1>>(nm));
  for (size_t q = 0; q < nm; ++q) {
    for (size_t g = 0; g < nm; ++g) {
      QueryResults* per_query = nullptr;
      if (opt.keep_case_queries)
        per_query = &rep.case_queries.emplace(std::make_pair(models[q].name, models[g].name), QueryResults(0))
                         .first->second;
      rep.matrix[q][g] = evaluate_case(models[q].query, models[g].gallery, opt, &top1[q][g], per_query);
      report("query " + models[q].name + " / gallery " + models[g].name, rep.matrix[q][g]);
    }
  }
  for (const auto& spec : upgrades) {
    const size_t i = index_of(spec.new_model, "new model"), o = index_of(spec.old_model, "old model");
    const size_t g = spec.gallery.empty() ? o : index_of(spec.gallery, "gallery model");
    UpgradeResult u;
    u.new_model = spec.new_model;
    u.old_model = spec.old_model;
    u.gallery_model = models[g].name;
    u.old_old = rep.matrix[o][o];
    u.new_new = rep.matrix[i][i];
    u.new_old = rep.matrix[i][g];
    const std::vector<Top1>& before = top1[o][o];
    u.flips_new_new = flip_rates(before, top1[i][i]);
    u.flips_new_old = flip_rates(before, top1[i][g]);
    for (double r : opt.mixed_fractions) {
      MixedPoint p;
      p.old_fraction = r;
      p.old_items = old_item_count(models[i].gallery.n, r);
      if (p.old_items == 0 || p.old_items == models[i].gallery.n) {
        // The whole new or the whole old gallery (mixed_gallery returns it as it is):
        // that case is in the matrix already.
        const size_t h = p.old_items == 0 ? i : g;
        p.metrics = rep.matrix[i][h];
        p.flips = flip_rates(before, top1[i][h]);
      } else {
        const features::FeatureSet mixed = mixed_gallery(models[i].gallery, models[g].gallery, r, opt.seed);
        std::vector<Top1> after;
        p.metrics = evaluate_case(models[i].query, mixed, opt, &after);
        p.flips = flip_rates(before, after);
      }
      std::ostringstream what;
      what << "query " << u.new_model << " / mixed gallery with " << u.gallery_model << " r=" << r;
      report(what.str(), p.metrics);
      u.mixed.push_back(std::move(p));
    }
    u.map = judge_compatibility(u.old_old.map, u.new_new.map, u.new_old.map);
    u.rank1 = judge_compatibility(u.old_old.rank1, u.new_new.rank1, u.new_old.rank1);
    rep.upgrades.push_back(std::move(u));
  }
  for (const auto& spec : opt.generation_mixes) {
    const size_t q = index_of(spec.query_model, "query model");
    std::vector<const features::FeatureSet*> galleries;
    for (const auto& name : spec.galleries) galleries.push_back(&models[index_of(name, "gallery model")].gallery);
    GenerationMixResult r;
    r.spec = spec;
    r.metrics = evaluate_case(models[q].query, generations_gallery(galleries, spec.fractions, opt.seed), opt);
    std::ostringstream what;
    what << "query " << spec.query_model << " / gallery of";
    for (size_t k = 0; k < spec.galleries.size(); ++k) what << " " << spec.galleries[k] << " " << spec.fractions[k];
    report(what.str(), r.metrics);
    rep.generation_mixes.push_back(std::move(r));
  }
  return rep;
}

std::vector<UpgradeSpec> lineage_upgrades(const std::vector<std::string>& lineage) {
  std::vector<UpgradeSpec> out;
  for (size_t n = 1; n < lineage.size(); ++n)
    for (size_t o = n; o-- > 0;) out.push_back({lineage[n], lineage[o], ""});
  return out;
}

std::vector<GenerationMixSpec> lineage_mixes(const std::vector<std::string>& lineage) {
  std::vector<GenerationMixSpec> out;
  if (lineage.size() < 3) return out;
  const std::string& newest = lineage.back();
  out.push_back({newest, lineage, std::vector<double>(lineage.size(), 1.0 / static_cast<double>(lineage.size()))});
  std::vector<std::string> older(lineage.begin(), lineage.end() - 1);
  out.push_back({newest, older, std::vector<double>(older.size(), 1.0 / static_cast<double>(older.size()))});
  return out;
}

}  // namespace dualtune::eval

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

}  // namespace

Metrics evaluate_case(const features::FeatureSet& query, const features::FeatureSet& gallery, const EvalOptions& opt,
                      std::vector<Top1>* top1) {
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
  const int64_t nq = query.n, ng = gallery.n, d = std::min(query.d, gallery.d);
  const std::vector<float> qn = normalized_prefix(nq, query.d, query.features.data(), d);
  const std::vector<float> gn = normalized_prefix(ng, gallery.d, gallery.features.data(), d);
  std::vector<int64_t> qcams_store, gcams_store;
  const std::vector<int64_t>& qcams = cams_or_unknown(query, qcams_store);
  const std::vector<int64_t>& gcams = cams_or_unknown(gallery, gcams_store);

  const int64_t num_impostors = opt.tar_far ? count_impostor_pairs(query.labels, gallery.labels) : 0;
  const int64_t keep = impostors_to_keep(kFarTargets[2], num_impostors);
  const int nthreads = std::max(1, omp_get_max_threads());
  std::vector<TarFarAccumulator> tar(static_cast<size_t>(nthreads), TarFarAccumulator(keep));
  QueryResults results(nq);

  for_each_similarity_block(nq, qn.data(), ng, gn.data(), d, opt.max_block_bytes,
                            [&](int64_t q0, int64_t rows, const float* S) {
#pragma omp parallel num_threads(nthreads)
    {
      std::vector<Role> roles(static_cast<size_t>(ng));
      RankScratch scratch;
      std::vector<int64_t> ranks;
      TarFarAccumulator& acc = tar[static_cast<size_t>(omp_get_thread_num())];
#pragma omp for schedule(dynamic, 8)
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t i = q0 + r;
        const int64_t ql = query.labels[i];
        if (ql < 0) continue;  // unlabelled query: skipped
        const float* s = S + r * ng;
        gallery_roles(protocol, i, ql, qcams[i], ng, gallery.labels.data(), gcams.data(), roles.data());
        if (opt.tar_far) {
          for (int64_t j = 0; j < ng; ++j) {
            if (roles[j] == Role::kPositive) {
              acc.add_genuine(s[j]);
            } else if (roles[j] == Role::kNegative) {
              acc.add_impostor(s[j]);
            }
          }
        }
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
  if (opt.tar_far) {
    for (int t = 1; t < nthreads; ++t) tar[0].merge(tar[static_cast<size_t>(t)]);
    DT_CHECK(tar[0].num_impostors() == num_impostors, "evaluate: internal error: expected ", num_impostors,
             " impostor pairs, counted ", tar[0].num_impostors());
    for (int f = 0; f < 3; ++f) m.tar_at_far[f] = tar[0].tar_at_far(kFarTargets[f]);
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
  rep.matrix.assign(nm, std::vector<Metrics>(nm));
  // Per-query top-1 of the self-tests and of the cross-tests against the old gallery: the flips' inputs.
  std::vector<std::vector<Top1>> self_top1(nm), cross_top1(nm);
  for (size_t q = 0; q < nm; ++q) {
    for (size_t g = 0; g < nm; ++g) {
      const bool to_old = static_cast<int64_t>(g) == old_index;
      std::vector<Top1>* top1 = q == g ? &self_top1[q] : (to_old ? &cross_top1[q] : nullptr);
      rep.matrix[q][g] = evaluate_case(models[q].query, models[g].gallery, opt, top1);
      report("query " + models[q].name + " / gallery " + models[g].name, rep.matrix[q][g]);
    }
  }
  const ModelFeatures& old_m = models[static_cast<size_t>(old_index)];
  for (size_t i = 0; i < nm; ++i) {
    if (static_cast<int64_t>(i) == old_index) continue;
    UpgradeResult u;
    u.new_model = models[i].name;
    u.old_old = rep.matrix[old_index][old_index];
    u.new_new = rep.matrix[i][i];
    u.new_old = rep.matrix[i][old_index];
    const std::vector<Top1>& before = self_top1[static_cast<size_t>(old_index)];
    u.flips_new_new = flip_rates(before, self_top1[i]);
    u.flips_new_old = flip_rates(before, cross_top1[i]);
    for (double r : opt.mixed_fractions) {
      MixedPoint p;
      p.old_fraction = r;
      p.old_items = old_item_count(models[i].gallery.n, r);
      const features::FeatureSet g = mixed_gallery(models[i].gallery, old_m.gallery, r, opt.seed);
      std::vector<Top1> top1;
      p.metrics = evaluate_case(models[i].query, g, opt, &top1);
      p.flips = flip_rates(before, top1);
      std::ostringstream what;
      what << "query " << u.new_model << " / mixed gallery r=" << r;
      report(what.str(), p.metrics);
      u.mixed.push_back(std::move(p));
    }
    u.map = judge_compatibility(u.old_old.map, u.new_new.map, u.new_old.map);
    u.rank1 = judge_compatibility(u.old_old.rank1, u.new_new.rank1, u.new_old.rank1);
    rep.upgrades.push_back(std::move(u));
  }
  return rep;
}

}  // namespace dualtune::eval

// Gallery fits: what a transition learns from data. fit_transition stores the rolling-out
// model's score calibrations (calibrated merge) and the uncertainty order's predictor;
// the aligned merge's per-query maps are fitted at search time on a sample of items each
// version shares with the deployed one (sampled when the query plan is built).
#include "dualtune/gallery/gallery.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "dualtune/eval/similarity.h"
#include "dualtune/gallery/gallery_internal.h"
#include "dualtune/util/error.h"

namespace dualtune::gallery {

Gallery::FitReport Gallery::fit_transition(const std::string& name, int64_t n, const float* old_vectors,
                                           const float* new_vectors, const int64_t* labels) {
  std::lock_guard<std::mutex> wl(writer_mu_);
  ModelInfo m, dep;
  {
    std::lock_guard<std::mutex> lk(store_mu_);
    m = store_->model(name);
    dep = deployed_locked();
  }
  DT_CHECK(m.role == Role::kRollingOut, "gallery calibrate: model '", name, "' is ", role_name(m.role),
           "; expected the rolling-out model (its queries meet two versions)");
  FitReport rep;
  if (labels) {
    rep.cal_new = fit_calibration_pairs(n, m.dim, new_vectors, m.dim, new_vectors, labels);
    rep.cal_old = fit_calibration_pairs(n, m.dim, new_vectors, dep.dim, old_vectors, labels);
  }
  rep.predictor = fit_discrepancy_predictor(n, dep.dim, old_vectors, m.dim, new_vectors);
  {
    std::lock_guard<std::mutex> lk(store_mu_);
    auto t = store_->transaction(true);
    if (labels) {
      store_->save_fit("calibration", m.id, m.version_id, rep.cal_new.to_json());
      store_->save_fit("calibration", m.id, dep.version_id, rep.cal_old.to_json());
    }
    store_->save_fit("order", m.id, dep.version_id, rep.predictor.to_json());
    t->commit();
  }
  invalidate_local();
  return rep;
}

std::optional<Calibration> Gallery::calibration(const std::string& query_model, int64_t version_id) {
  std::lock_guard<std::mutex> lk(store_mu_);
  const std::string s = store_->load_fit("calibration", store_->model(query_model).id, version_id);
  if (s.empty()) return std::nullopt;
  return Calibration::from_json(s);
}

std::optional<DiscrepancyPredictor> Gallery::order_predictor(const std::string& name) {
  std::lock_guard<std::mutex> lk(store_mu_);
  const ModelInfo m = store_->model(name);
  const std::string s = store_->load_fit("order", m.id, deployed_locked().version_id);
  if (s.empty()) return std::nullopt;
  return DiscrepancyPredictor::from_json(s);
}

namespace detail {

void sample_alignment(QueryPlan& plan) {
  if (plan.slots.size() < 2) return;
  // Items shared with the base (last) slot, evenly strided.
  const VectorIndex& base = *plan.slots.back().index;
  for (size_t k = 0; k + 1 < plan.slots.size(); ++k) {
    Slot& s = plan.slots[k];
    std::vector<std::pair<int64_t, int64_t>> shared;
    for (int64_t p = 0; p < s.index->size(); ++p) {
      const int64_t b = base.position(s.index->ids()[p]);
      if (b >= 0) shared.emplace_back(p, b);
    }
    const size_t stride = std::max<size_t>(1, (shared.size() + kAlignSample - 1) / kAlignSample);
    const int64_t d = s.index->dim(), db = base.dim();
    for (size_t i = 0; i < shared.size(); i += stride) {
      s.align_x.insert(s.align_x.end(), s.index->vectors() + shared[i].first * d,
                       s.index->vectors() + (shared[i].first + 1) * d);
      s.align_base_x.insert(s.align_base_x.end(), base.vectors() + shared[i].second * db,
                            base.vectors() + (shared[i].second + 1) * db);
      ++s.align_m;
    }
  }
}

AlignFit fit_alignment(const QueryPlan& plan, int64_t nq, int64_t dq, const float* queries) {
  // Per query i and slot s: Sn = its scores on the slot's sample, So = on the same items
  // in the base slot; a = sd(So) / sd(Sn), b = mean(So) - a·mean(Sn) (kept 1, 0 when
  // sd(Sn) = 0 or the sample has fewer than 2 items).
  const size_t ns = plan.slots.size();
  AlignFit fit;
  fit.a.assign(ns, std::vector<double>(static_cast<size_t>(nq), 1.0));
  fit.b.assign(ns, std::vector<double>(static_cast<size_t>(nq), 0.0));
  const Slot& base = plan.slots.back();
  const auto qb = eval::normalized_prefix(nq, dq, queries, base.index->dim());
  for (size_t s = 0; s + 1 < ns; ++s) {
    const Slot& slot = plan.slots[s];
    const int64_t m_ = slot.align_m;
    if (m_ < 2) continue;
    const int64_t d = slot.index->dim(), db = base.index->dim();
    const auto qs = eval::normalized_prefix(nq, dq, queries, d);
    std::vector<float> Sn(static_cast<size_t>(nq * m_)), So(static_cast<size_t>(nq * m_));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(nq), int(m_), int(d), 1.f, qs.data(), int(d),
                slot.align_x.data(), int(d), 0.f, Sn.data(), int(m_));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(nq), int(m_), int(db), 1.f, qb.data(), int(db),
                slot.align_base_x.data(), int(db), 0.f, So.data(), int(m_));
    for (int64_t i = 0; i < nq; ++i) {
      double n1 = 0, n2 = 0, o1 = 0, o2 = 0;
      for (int64_t t = 0; t < m_; ++t) {
        const double sn = Sn[i * m_ + t], so = So[i * m_ + t];
        n1 += sn, n2 += sn * sn, o1 += so, o2 += so * so;
      }
      const double mn = n1 / m_, mo = o1 / m_;
      const double sdn = std::sqrt(std::max(0.0, n2 / m_ - mn * mn)), sdo = std::sqrt(std::max(0.0, o2 / m_ - mo * mo));
      if (sdn > 0) {
        fit.a[s][i] = sdo / sdn;
        fit.b[s][i] = mo - fit.a[s][i] * mn;
      }
    }
  }
  return fit;
}

}  // namespace detail

}  // namespace dualtune::gallery

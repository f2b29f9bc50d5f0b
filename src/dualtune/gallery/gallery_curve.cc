// Gallery curve data: the gallery as a backfill-curve problem (curve.h): items with both
// models' embeddings, their labels and cameras, leave-one-out queries, the orders a curve
// compares, and the quality of the gallery as it is now.
#include "dualtune/gallery/gallery.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <unordered_map>

#include "dualtune/util/error.h"

namespace dualtune::gallery {
namespace {

/// Dense labels: distinct label strings in sorted order -> 0..L-1; "" -> -1.
std::vector<int64_t> dense_labels(const std::vector<ItemRow>& rows) {
  std::map<std::string, int64_t> ids;
  for (const auto& r : rows)
    if (!r.record.label.empty()) ids.emplace(r.record.label, 0);
  int64_t next = 0;
  for (auto& [k, v] : ids) v = next++;
  std::vector<int64_t> out;
  out.reserve(rows.size());
  for (const auto& r : rows) out.push_back(r.record.label.empty() ? -1 : ids[r.record.label]);
  return out;
}

}  // namespace

CurveData Gallery::curve_data(const std::string& name, std::vector<int64_t>* ids_out) {
  std::lock_guard<std::mutex> lk(store_mu_);
  const ModelInfo m = store_->model(name);
  const ModelInfo dep = deployed_locked();
  DT_CHECK(m.id != dep.id, "gallery curve: model '", name, "' is the deployed model; expected the rolling-out model");
  const auto with_new = store_->items_with(m.version_id);
  const auto with_old = store_->items_with(dep.version_id);
  std::vector<int64_t> ids;
  std::set_intersection(with_new.begin(), with_new.end(), with_old.begin(), with_old.end(), std::back_inserter(ids));
  DT_CHECK(!ids.empty(), "gallery curve: no item has both a '", dep.name, "' and a '", name,
           "' embedding; expected the new embeddings of the gallery (backfill it, or import the new model's features)");
  CurveData d;
  d.n = static_cast<int64_t>(ids.size());
  d.d_old = dep.dim;
  d.d_new = m.dim;
  std::vector<uint8_t> has;
  d.old_vectors = store_->vectors_of(dep.version_id, ids, has);
  d.new_vectors = store_->vectors_of(m.version_id, ids, has);
  const auto rows = store_->items(ids);
  d.labels = dense_labels(rows);
  bool any_cam = false;
  for (const auto& r : rows) any_cam |= r.record.cam >= 0;
  if (any_cam)
    for (const auto& r : rows) d.cams.push_back(r.record.cam);
  d.nq = d.n;
  d.queries = d.new_vectors;
  d.query_labels = d.labels;
  d.query_cams = d.cams;
  d.query_self.resize(static_cast<size_t>(d.n));
  for (int64_t i = 0; i < d.n; ++i) d.query_self[i] = i;
  if (ids_out) *ids_out = ids;
  return d;
}

CurveData Gallery::state_data(const std::string& name, int64_t nq, const float* queries,
                              const std::vector<std::string>& query_keys, const std::vector<Merge>& merges,
                              std::vector<CurveSpec>& specs, std::vector<uint8_t>& has_new, std::vector<int64_t>& ids) {
  std::lock_guard<std::mutex> lk(store_mu_);
  CurveData d;
  const ModelInfo m = store_->model(name);
  const ModelInfo dep = deployed_locked();
  DT_CHECK(m.id != dep.id, "gallery: evaluate_state expects the rolling-out model, '", name, "' is deployed");
  const auto rows = store_->items();
  ids.clear();
  for (const auto& r : rows) ids.push_back(r.id);
  d.n = static_cast<int64_t>(ids.size());
  d.d_old = dep.dim;
  d.d_new = m.dim;
  std::vector<uint8_t> has_old;
  d.old_vectors = store_->vectors_of(dep.version_id, ids, has_old);
  d.new_vectors = store_->vectors_of(m.version_id, ids, has_new);
  d.labels = dense_labels(rows);
  for (const auto& r : rows) d.cams.push_back(r.record.cam);
  if (std::all_of(d.cams.begin(), d.cams.end(), [](int64_t c) { return c < 0; })) d.cams.clear();
  for (int64_t i = 0; i < d.n; ++i)
    DT_CHECK(has_new[i] || has_old[i], "gallery: item '", rows[i].record.key, "' has no embedding of '", name,
             "' nor of '", dep.name, "'");
  std::unordered_map<std::string, int64_t> index;
  for (int64_t i = 0; i < d.n; ++i) index[rows[i].record.key] = i;
  DT_CHECK(static_cast<int64_t>(query_keys.size()) == nq, "gallery: expected one key per query");
  d.nq = nq;
  d.queries.assign(queries, queries + nq * m.dim);
  for (const auto& k : query_keys) {
    auto it = index.find(k);
    DT_CHECK(it != index.end(), "gallery: query key '", k, "' is not a gallery item (expected leave-one-out queries)");
    d.query_self.push_back(it->second);
    d.query_labels.push_back(d.labels[it->second]);
  }
  if (!d.cams.empty())
    for (int64_t s : d.query_self) d.query_cams.push_back(d.cams[s]);
  specs.clear();
  for (Merge mg : merges) {
    CurveSpec spec{"now", {}, mg, {}, {}};
    if (mg == Merge::kCalibrated) {
      const std::string cn = store_->load_fit("calibration", m.id, m.version_id);
      const std::string co = store_->load_fit("calibration", m.id, dep.version_id);
      DT_CHECK(!cn.empty() && !co.empty(), "gallery: merge 'calibrated' needs the calibrations of '", name, "'");
      spec.cal_new = Calibration::from_json(cn);
      spec.cal_old = Calibration::from_json(co);
    }
    specs.push_back(std::move(spec));
  }
  return d;
}

std::vector<CurvePoint> Gallery::evaluate_state(const std::string& name, int64_t nq, const float* queries,
                                                const std::vector<std::string>& query_keys,
                                                const std::vector<Merge>& merges, int threads) {
  std::vector<CurveSpec> specs;
  std::vector<uint8_t> has_new;
  std::vector<int64_t> ids;
  const CurveData d = state_data(name, nq, queries, query_keys, merges, specs, has_new, ids);
  // Items with the new vector first: at fraction count/n exactly they are scored new/new.
  std::vector<int64_t> order;
  for (int64_t i = 0; i < d.n; ++i)
    if (has_new[i]) order.push_back(i);
  const int64_t backfilled = static_cast<int64_t>(order.size());
  for (int64_t i = 0; i < d.n; ++i)
    if (!has_new[i]) order.push_back(i);
  for (auto& s : specs) s.order = order;
  const double fraction = d.n > 0 ? double(backfilled) / double(d.n) : 0;
  std::vector<CurvePoint> out;
  for (const auto& c : backfill_curves(d, specs, {fraction}, threads)) out.push_back(c.points.front());
  return out;
}

std::vector<std::vector<CurvePoint>> Gallery::evaluate_backfill_states(const std::string& name, int64_t nq,
                                                                       const float* queries,
                                                                       const std::vector<std::string>& query_keys,
                                                                       const std::vector<Merge>& merges,
                                                                       const std::vector<int64_t>& backfilled,
                                                                       int threads) {
  std::vector<CurveSpec> specs;
  std::vector<uint8_t> has_new;
  std::vector<int64_t> ids;
  const CurveData d = state_data(name, nq, queries, query_keys, merges, specs, has_new, ids);
  const auto order = plan_order_indices(name, ids);
  std::vector<double> fractions;
  for (const int64_t c : backfilled) {
    DT_CHECK(c >= 0 && c <= d.n, "gallery: a backfill state of ", c, " items, expected 0..", d.n);
    for (int64_t p = 0; p < c; ++p)
      DT_CHECK(has_new[order[p]], "gallery: the state after ", c, " backfilled items needs the '", name,
               "' embedding of the plan's item at position ", p, ", which has none; expected the plan's first ", c,
               " items to be embedded");
    fractions.push_back(d.n > 0 ? double(c) / double(d.n) : 0);
  }
  for (auto& s : specs) s.order = order;
  // One similarity pass scores every state: an item is scored new/new at state k exactly
  // when it is among the plan's first backfilled[k] items, as it was then.
  const auto curves = backfill_curves(d, specs, fractions, threads);
  std::vector<std::vector<CurvePoint>> out(backfilled.size());
  for (size_t k = 0; k < backfilled.size(); ++k)
    for (const auto& c : curves) out[k].push_back(c.points[k]);
  return out;
}

std::vector<int64_t> Gallery::plan_order_indices(const std::string& name, const std::vector<int64_t>& ids) {
  std::lock_guard<std::mutex> lk(store_mu_);
  const ModelInfo m = store_->model(name);
  Plan plan;
  DT_CHECK(store_->load_plan(m.version_id, plan), "gallery curve: '", name, "' has no backfill plan; expected one "
           "(`gallery backfill`), or an order name");
  std::unordered_map<int64_t, int64_t> index;
  for (size_t i = 0; i < ids.size(); ++i) index[ids[i]] = static_cast<int64_t>(i);
  std::vector<uint8_t> placed(ids.size(), 0);
  std::vector<int64_t> planned;
  for (int64_t id : plan.items) {
    auto it = index.find(id);
    if (it != index.end() && !placed[it->second]) {
      planned.push_back(it->second);
      placed[it->second] = 1;
    }
  }
  // Items that had the new embedding before the plan was made come first.
  std::vector<int64_t> out;
  for (size_t i = 0; i < ids.size(); ++i)
    if (!placed[i]) out.push_back(static_cast<int64_t>(i));
  out.insert(out.end(), planned.begin(), planned.end());
  return out;
}

std::vector<int64_t> Gallery::curve_order(const std::string& name, const std::string& order, uint64_t seed,
                                          const CurveData& data, const std::vector<int64_t>& ids) {
  std::vector<int64_t> idx(static_cast<size_t>(data.n));
  for (int64_t i = 0; i < data.n; ++i) idx[i] = i;
  if (order == "random") return random_order(idx, seed);
  if (order == "plan") return plan_order_indices(name, ids);
  if (order == "oracle")
    return order_by_score_desc(idx, compatibility_error(data.n, data.d_old, data.old_vectors.data(), data.d_new,
                                                        data.new_vectors.data()));
  DT_CHECK(order == "uncertainty", "gallery curve: expected an order random, uncertainty, oracle or plan, found '", order, "'");
  const auto pred = order_predictor(name);
  DT_CHECK(pred, "gallery curve: order 'uncertainty' needs the order predictor of '", name,
           "' (`gallery calibrate`); none is stored");
  return order_by_score_desc(idx, pred->predict(data.n, data.old_vectors.data()));
}

}  // namespace dualtune::gallery

#include "dualtune/app/gallery_curve.h"

#include <map>

#include "dualtune/features/feature_set.h"
#include "dualtune/gallery/gallery.h"
#include "dualtune/report/backfill_report.h"
#include "dualtune/util/error.h"

namespace dualtune::app {

std::vector<gallery::Curve> run_curve_command(const CurveCommandOptions& o, std::ostream& out, std::ostream& warn) {
  gallery::OpenOptions oo;
  oo.read_only = true;
  auto gal = gallery::Gallery::open(o.dir, oo);
  const std::string model = o.model.empty() ? gal->target_model().name : o.model;
  const gallery::ModelInfo m = gal->model(model);
  std::vector<int64_t> ids;
  gallery::CurveData data = gal->curve_data(model, &ids);
  if (!o.queries.empty()) {
    const auto q = features::FeatureSet::load(o.queries);
    DT_CHECK(q.d == data.d_new, "gallery curve: queries of ", o.queries, " have dimension ", q.d, ", model '", model,
             "' embeds ", data.d_new);
    // Labels match by name, as the gallery stores them; a query whose key is a gallery
    // item is left out of its own gallery.
    const auto rows = gal->items(ids);
    std::map<std::string, int64_t> dense, index_of_key;
    for (size_t i = 0; i < rows.size(); ++i) {
      if (data.labels[i] >= 0) dense[rows[i].record.label] = data.labels[i];
      index_of_key[rows[i].record.key] = static_cast<int64_t>(i);
    }
    data.nq = q.n;
    data.queries = q.features;
    data.query_labels.clear();
    data.query_self.clear();
    data.query_cams = data.cams.empty() ? std::vector<int64_t>{} : q.cams;
    for (int64_t i = 0; i < q.n; ++i) {
      const int64_t l = q.labels[i];
      const std::string name = l < 0 ? "" : q.class_names.empty() ? std::to_string(l) : q.class_names[l];
      auto it = dense.find(name);
      data.query_labels.push_back(l < 0 || it == dense.end() ? -1 : it->second);
      auto self = q.paths[i].empty() ? index_of_key.end() : index_of_key.find(q.paths[i]);
      data.query_self.push_back(self == index_of_key.end() ? -1 : self->second);
    }
  }
  const auto cal_new = gal->calibration(model, m.version_id);
  gallery::ModelInfo dep;
  for (const auto& x : gal->models())
    if (x.role == gallery::Role::kDeployed) dep = x;
  const auto cal_old = gal->calibration(model, dep.version_id);
  std::vector<std::string> orders = o.orders, merges = o.merges;
  if (orders.empty()) {
    if (gal->status().backfill.planned > 0) orders.push_back("plan");
    orders.push_back("random");
    if (gal->order_predictor(model)) orders.push_back("uncertainty");
    orders.push_back("oracle");
  }
  if (merges.empty()) {
    merges = {"raw", "rank", "aligned"};
    if (cal_new && cal_old) merges.push_back("calibrated");
  }
  std::vector<gallery::CurveSpec> specs;
  for (const auto& name : orders) {
    const auto order = gal->curve_order(model, name, o.seed, data, ids);
    for (const auto& mname : merges) {
      gallery::CurveSpec s;
      s.order_name = name;
      s.order = order;
      s.merge = gallery::parse_merge(mname);
      if (s.merge == gallery::Merge::kCalibrated) {
        DT_CHECK(cal_new && cal_old, "gallery curve: merge 'calibrated' needs the calibrations of '", model,
                 "' (`gallery calibrate`); none is stored");
        s.cal_new = *cal_new;
        s.cal_old = *cal_old;
      }
      specs.push_back(std::move(s));
    }
  }
  const auto curves = gallery::backfill_curves(data, specs, gallery::parse_curve_fractions(o.fractions), o.threads);
  DT_CHECK(!o.out.empty() || !gal->cache_dir().empty(), "gallery curve: ", gal->dir(),
           " is a database, not a directory: expected --out DIR for curve.json, curve.md and the plot");
  const std::string dir = o.out.empty() ? gal->cache_dir() + "/curve" : o.out;
  const std::string title = "Backfill of '" + model + "' over '" + dep.name + "': " + std::to_string(data.n) +
                            " items, " + std::to_string(data.nq) + " queries";
  const std::string png = report::write_backfill_curves(curves, title, dir, warn);
  out << "# " << title << "\n\n" << report::backfill_curves_markdown(curves) << "written: " << dir << "/curve.json, "
      << dir << "/curve.md" << (png.empty() ? "" : ", " + dir + "/" + png) << "\n";
  return curves;
}

}  // namespace dualtune::app

// GET /api/backfill, POST /api/backfill (start), POST /api/backfill/pause.
#include "dualtune/serve/request.h"
#include "dualtune/serve/routes.h"

namespace dualtune::serve {

nlohmann::json backfill_json(Context& ctx) {
  const auto st = ctx.gallery.status();  // the plan's counters, as committed
  const BackfillSnapshot s = ctx.backfill.snapshot();
  const auto& p = s.progress;
  nlohmann::json j{{"state", s.state},
                   {"running", s.state == "running" || s.state == "pausing"},
                   {"model", st.backfill.model.empty() ? nlohmann::json(nullptr) : nlohmann::json(st.backfill.model)},
                   {"order", st.backfill.order.empty() ? nlohmann::json(nullptr) : nlohmann::json(st.backfill.order)},
                   {"planned", st.backfill.planned},
                   {"done", st.backfill.done},
                   {"failed", st.backfill.failed},
                   {"fraction", st.backfill.planned > 0 ? double(st.backfill.done) / double(st.backfill.planned) : 0.0},
                   {"this_run", {{"items", p.this_run},
                                 {"seconds", p.seconds},
                                 {"items_per_second", p.items_per_second},
                                 {"eta_seconds", p.eta_seconds}}}};
  if (s.has_report) {
    nlohmann::json failures = nlohmann::json::array();
    for (size_t i = 0; i < s.report.failures.size() && i < 20; ++i)
      failures.push_back({{"key", s.report.failures[i].first}, {"error", s.report.failures[i].second}});
    j["last_run"] = {{"embedded", s.report.embedded},   {"failed", s.report.failed},
                     {"remaining", s.report.remaining}, {"finished", s.report.finished},
                     {"cancelled", s.report.cancelled}, {"seconds", s.report.seconds},
                     {"failures", failures}};
  }
  if (!s.error.empty()) j["error"] = s.error;
  return j;
}

void get_backfill(Context& ctx, const httplib::Request&, httplib::Response& res) {
  send_json(res, backfill_json(ctx));
}

void post_backfill(Context& ctx, const httplib::Request& req, httplib::Response& res) {
  HTTP_CHECK(!ctx.stopping, 503, "the server is shutting down; no backfill starts now");
  const auto body = req.body.empty() ? nlohmann::json::object() : json_body(req);
  const JsonFields f(body);
  gallery::BackfillOptions o;
  const std::string name = f.string("model");
  const gallery::ModelInfo m = name.empty() ? ctx.gallery.target_model() : ctx.model(name);
  HTTP_CHECK(m.role == gallery::Role::kRollingOut, 409, "model '", m.name, "' is ", gallery::role_name(m.role),
             "; a backfill fills in the embeddings of the model that is rolling out",
             name.empty() ? " and none is (expected `gallery rollout` first)" : "");
  o.order = f.string("order");
  HTTP_CHECK(o.order.empty() || o.order == "random" || o.order == "uncertainty", 400, "\"order\" must be random or "
             "uncertainty, found '", o.order, "'");
  HTTP_CHECK(o.order != "uncertainty" || ctx.gallery.order_predictor(m.name), 409, "order 'uncertainty' needs the "
             "predictor fitted by `gallery calibrate --model ", m.name, "`; none is stored (expected it, or order random)");
  o.seed = static_cast<uint64_t>(f.integer("seed", 0, 0, std::numeric_limits<int64_t>::max()));
  o.batch_size = f.integer("batch_size", 256, 1, ctx.options.limits.max_batch_size);
  o.max_items = f.integer("max_items", 0, 0, std::numeric_limits<int64_t>::max());
  o.max_seconds = f.seconds("max_seconds", 0);
  o.replan = f.boolean("replan", false);
  o.retry_failed = f.boolean("retry_failed", false);
  ctx.backfill.start(o, m);
  send_json(res, backfill_json(ctx), 202);
}

void post_backfill_pause(Context& ctx, const httplib::Request&, httplib::Response& res) {
  HTTP_CHECK(ctx.backfill.pause(), 409, "no backfill is running (state: ", ctx.backfill.snapshot().state, ")");
  send_json(res, backfill_json(ctx), 202);
}

}  // namespace dualtune::serve

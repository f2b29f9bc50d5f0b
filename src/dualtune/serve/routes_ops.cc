// GET /api/health, GET /api/metrics, and the page (GET / and its files).
#include "dualtune/serve/assets.h"
#include "dualtune/serve/request.h"
#include "dualtune/serve/routes.h"

namespace dualtune::serve {

void get_health(Context& ctx, const httplib::Request&, httplib::Response& res) {
  const auto st = ctx.gallery.status();
  send_json(res, {{"status", ctx.stopping ? "stopping" : "ok"},
                  {"gallery", st.uuid},
                  {"items", st.items},
                  {"shard", ctx.options.shard.str()},
                  {"uptime_seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - ctx.started).count()}});
}

void get_metrics(Context& ctx, const httplib::Request&, httplib::Response& res) {
  send_json(res, ctx.metrics.to_json());
}

void get_page_file(Context&, const httplib::Request& req, httplib::Response& res) {
  const std::string name = req.matches[1].str().empty() ? "index.html" : req.matches[1].str();
  const Asset* a = find_asset(name);
  HTTP_CHECK(a, 404, "no page file '", name, "'; the page is at /");
  res.set_content(reinterpret_cast<const char*>(a->data), a->size, content_type_of(name));
  // The page and its script may only talk to this server, and load nothing from elsewhere.
  res.set_header("Content-Security-Policy",
                 "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
                 "connect-src 'self'; frame-ancestors 'none'");
}

}  // namespace dualtune::serve

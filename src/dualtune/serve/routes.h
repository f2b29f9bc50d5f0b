#pragma once
// The route handlers (docs/API.md), one function per route, grouped by what they serve:
//   routes_ops.cc      GET /api/health, GET /api/metrics, GET / and the page's files
//   routes_gallery.cc  GET /api/status, GET /api/items, GET /api/items/{id}/image,
//                      POST /api/items (write), POST /api/models/{name}/retire (write),
//                      POST /api/rollback (write)
//   routes_search.cc   POST /api/search, POST /api/search/image
//   routes_backfill.cc GET /api/backfill, POST /api/backfill (write), POST /api/backfill/pause (write)
//   routes_report.cc   GET /api/curve, GET /api/curve/plot, GET /api/report, GET /api/report/plots/{file}
// A handler validates everything it reads before it starts work and throws HttpError
// with the status and message of the first problem (service.cc sends it as JSON).
#include <httplib.h>

#include <nlohmann/json.hpp>

#include "dualtune/serve/context.h"

namespace dualtune::serve {

using Handler = void (*)(Context&, const httplib::Request&, httplib::Response&);

void get_health(Context&, const httplib::Request&, httplib::Response&);
void get_metrics(Context&, const httplib::Request&, httplib::Response&);
void get_page_file(Context&, const httplib::Request&, httplib::Response&);

void get_status(Context&, const httplib::Request&, httplib::Response&);
void get_items(Context&, const httplib::Request&, httplib::Response&);
void get_item_image(Context&, const httplib::Request&, httplib::Response&);
void post_items(Context&, const httplib::Request&, httplib::Response&);
void post_retire(Context&, const httplib::Request&, httplib::Response&);
void post_rollback(Context&, const httplib::Request&, httplib::Response&);

void post_search(Context&, const httplib::Request&, httplib::Response&);
void post_search_image(Context&, const httplib::Request&, httplib::Response&);

void get_backfill(Context&, const httplib::Request&, httplib::Response&);
void post_backfill(Context&, const httplib::Request&, httplib::Response&);
void post_backfill_pause(Context&, const httplib::Request&, httplib::Response&);

void get_curve(Context&, const httplib::Request&, httplib::Response&);
void get_curve_plot(Context&, const httplib::Request&, httplib::Response&);
void get_report(Context&, const httplib::Request&, httplib::Response&);
void get_report_plot(Context&, const httplib::Request&, httplib::Response&);

// --- shared by the handlers -----------------------------------------------------------
/// What a gallery version is to a reader of results: "new" (the rolling-out model's own
/// embedding), "old" (the deployed model's, while another rolls out), "current" (the
/// deployed model's when nothing rolls out), "mapped" (a derived version: vectors mapped
/// from another model's without an image), "retired".
std::string embedding_kind(const gallery::VersionInfo& v, const std::vector<gallery::ModelInfo>& models);
/// The backfill block of /api/status and /api/backfill.
nlohmann::json backfill_json(Context& ctx);
/// The image bytes of an upload: the raw body (Content-Type image/* or
/// application/octet-stream) or the multipart field `field`; 413 above max_bytes, 415
/// for another Content-Type, 400 for a multipart body without the field.
std::string uploaded_image(const httplib::Request& req, const char* field, int64_t max_bytes);
/// 415 unless bytes decode as an image (PNG, JPEG, BMP, ... as OpenCV reads them);
/// returns the file extension of its format (".png", ".jpg", ".bmp", ".img").
std::string check_image_bytes(const std::string& bytes);

}  // namespace dualtune::serve

#include "dualtune/serve/service.h"

#include <dlfcn.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <regex>
#include <thread>

#include "dualtune/serve/context.h"
#include "dualtune/serve/listener.h"
#include "dualtune/serve/request.h"
#include "dualtune/serve/routes.h"
#include "dualtune/serve/token.h"

namespace dualtune::serve {
namespace {

using Clock = std::chrono::steady_clock;

/// One route: its method, its path pattern (httplib regex) and name (metrics, docs),
/// whether it changes the gallery (bearer token), its body limit, its handler.
struct Route {
  const char* method;
  const char* pattern;
  const char* name;
  bool write;
  int64_t Limits::*max_body;  ///< null: no body expected (GET)
  Handler handler;
};

const std::vector<Route>& routes() {
  static const std::vector<Route> all{
      {"GET", "/api/health", "GET /api/health", false, nullptr, get_health},
      {"GET", "/api/metrics", "GET /api/metrics", false, nullptr, get_metrics},
      {"GET", "/api/status", "GET /api/status", false, nullptr, get_status},
      {"GET", "/api/items", "GET /api/items", false, nullptr, get_items},
      {"GET", R"(/api/items/(-?\d+)/image)", "GET /api/items/{id}/image", false, nullptr, get_item_image},
      {"POST", "/api/items", "POST /api/items", true, &Limits::max_body_bytes, post_items},
      {"POST", "/api/models/([^/]+)/retire", "POST /api/models/{name}/retire", true, &Limits::max_body_bytes, post_retire},
      {"POST", "/api/rollback", "POST /api/rollback", true, &Limits::max_body_bytes, post_rollback},
      {"POST", "/api/search", "POST /api/search", false, &Limits::max_body_bytes, post_search},
      {"POST", "/api/search/image", "POST /api/search/image", false, &Limits::max_image_bytes, post_search_image},
      {"GET", "/api/backfill", "GET /api/backfill", false, nullptr, get_backfill},
      {"POST", "/api/backfill", "POST /api/backfill", true, &Limits::max_body_bytes, post_backfill},
      {"POST", "/api/backfill/pause", "POST /api/backfill/pause", true, &Limits::max_body_bytes, post_backfill_pause},
      {"GET", "/api/curve", "GET /api/curve", false, nullptr, get_curve},
      {"GET", "/api/curve/plot", "GET /api/curve/plot", false, nullptr, get_curve_plot},
      {"GET", "/api/report", "GET /api/report", false, nullptr, get_report},
      {"GET", R"(/api/report/plots/([^/]+))", "GET /api/report/plots/{file}", false, nullptr, get_report_plot},
      {"GET", R"(/([A-Za-z0-9_.-]*))", "GET /{page file}", false, nullptr, get_page_file},
  };
  return all;
}

/// What the pre-routing step learnt about the request being handled on this thread,
/// for the logger (which httplib calls on the same thread once the answer is written).
struct InFlight {
  bool active = false;
  Clock::time_point t0;
  const Route* route = nullptr;
  bool recorded = false;  ///< metrics already hold it (recorded before the answer is sent)
};
thread_local InFlight in_flight;

/// Multipart bodies carry headers and boundaries around the image.
constexpr int64_t kMultipartOverhead = 64 << 10;

}  // namespace

struct Service::Impl {
  Impl(gallery::Gallery& g, EmbedderFactory f, ServiceOptions o) : ctx(g, std::move(f), std::move(o)) {}
  Context ctx;
  httplib::Server server;
  std::vector<std::regex> patterns;
  Listener listener{server};

  const Route* match(const httplib::Request& req) const {
    const auto& all = routes();
    for (size_t i = 0; i < all.size(); ++i)
      if (req.method == all[i].method && std::regex_match(req.path, patterns[i])) return &all[i];
    return nullptr;
  }

  /// Token and body limit, before the body is read: the refusal costs no work.
  httplib::Server::HandlerResponse before(const httplib::Request& req, httplib::Response& res) {
    in_flight = {true, Clock::now(), match(req), false};
    const Route* r = in_flight.route;
    if (!r) return httplib::Server::HandlerResponse::Unhandled;
    if (r->write) {
      if (ctx.options.token.empty()) {
        send_error(res, 403, std::string(r->name) + " changes the gallery and is disabled: the server was started "
                                                    "without --token-file");
        record(res.status);
        return httplib::Server::HandlerResponse::Handled;
      }
      const std::string presented = bearer_token(req.get_header_value("Authorization"));
      if (!tokens_equal(presented, ctx.options.token)) {
        res.set_header("WWW-Authenticate", "Bearer realm=\"dualtune\"");
        send_error(res, 401, presented.empty() ? std::string(r->name) + " changes the gallery: expected the header "
                                                 "'Authorization: Bearer <token>' with the token of the server's --token-file"
                                               : "the bearer token does not match the server's --token-file");
        res.set_header("Connection", "close");  // the unread body must not be parsed as the next request
        record(res.status);
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    const int64_t limit = r->max_body ? ctx.options.limits.*(r->max_body) : 0;
    const bool multipart = req.get_header_value("Content-Type").rfind("multipart/form-data", 0) == 0;
    const int64_t allowed = limit + (multipart && r->handler == post_search_image ? kMultipartOverhead : 0);
    const int64_t length = req.has_header("Content-Length") ? req.get_header_value<uint64_t>("Content-Length") : 0;
    if (length > allowed) {
      send_error(res, 413, r->max_body ? "request body of " + std::to_string(length) + " bytes is larger than the limit of " +
                                             std::to_string(limit) + " bytes of " + r->name
                                       : std::string(r->name) + " takes no request body; found " + std::to_string(length) +
                                             " bytes");
      res.set_header("Connection", "close");
      record(res.status);
      return httplib::Server::HandlerResponse::Handled;
    }
    if (bodiless_post(*r, req, res)) return httplib::Server::HandlerResponse::Handled;
    return httplib::Server::HandlerResponse::Unhandled;
  }

  /// Runs the route's handler; its HttpError (a StoreUnreachable as 503, any other
  /// exception as 500) becomes the JSON error answer.
  void dispatch(const Route& route, const httplib::Request& req, httplib::Response& res) {
    try {
      // A body sent without Content-Length (chunked) is measured once read.
      const int64_t limit = route.max_body ? ctx.options.limits.*(route.max_body) : 0;
      const int64_t slack = req.is_multipart_form_data() && route.handler == post_search_image ? kMultipartOverhead : 0;
      HTTP_CHECK(static_cast<int64_t>(req.body.size()) <= limit + slack, 413, "request body of ", req.body.size(),
                 " bytes is larger than the limit of ", limit, " bytes of ", route.name);
      route.handler(ctx, req, res);
    } catch (const HttpError& e) {
      send_error(res, e.status, ctx.public_text(e.what()));
    } catch (const gallery::StoreUnreachable& e) {
      // The server is down or restarting: the store reconnects at the next request.
      res.set_header("Retry-After", "1");
      send_error(res, 503, ctx.public_text(std::string("the gallery's database is unreachable: ") + e.what()));
    } catch (const std::exception& e) {
      send_error(res, 500, ctx.public_text(e.what()));
    }
    record(res.status);
  }

  /// A POST with neither Content-Length nor Transfer-Encoding has no body (RFC 9112
  /// §6.3: "If this is a request message and none of the above are true, then the
  /// message body length is zero"), and it is what curl 7.88 sends for `curl -X POST
  /// URL`. Debian's cpp-httplib 0.11.4 instead reads such a body until the connection
  /// closes: the client waits for the answer, httplib for the close, until its read
  /// timeout (5 s) makes it answer 400 (later cpp-httplib releases read no body). So the
  /// request is answered here, before httplib reads, with the empty body it has.
  bool bodiless_post(const Route& route, const httplib::Request& req, httplib::Response& res) {
    if (req.method != "POST" || req.has_header("Content-Length") || req.has_header("Transfer-Encoding")) return false;
    httplib::Request copy = req;  // the pre-routing step sees the request before httplib matched its path
    std::regex_match(copy.path, copy.matches, patterns[static_cast<size_t>(&route - routes().data())]);
    dispatch(route, copy, res);
    return true;
  }

  /// Counts the request in the metrics before its answer is sent, so a client that
  /// reads /api/metrics next sees it.
  void record(int status) {
    if (in_flight.recorded) return;
    in_flight.recorded = true;
    const double ms = in_flight.active ? std::chrono::duration<double, std::milli>(Clock::now() - in_flight.t0).count() : 0;
    ctx.metrics.record(in_flight.active && in_flight.route ? in_flight.route->name : "(no route)", status < 0 ? 200 : status, ms);
  }

  void after(const httplib::Request& req, const httplib::Response& res) {
    const double ms = in_flight.active ? std::chrono::duration<double, std::milli>(Clock::now() - in_flight.t0).count() : 0;
    record(res.status);  // answers httplib made itself (no route, malformed request)
    in_flight = {};
    if (ctx.options.log) {
      char line[64];
      std::snprintf(line, sizeof line, " %d %.2f ms", res.status, ms);
      ctx.options.log(req.method + " " + req.path + line);
    }
  }
};

bool use_single_threaded_blas() {
  using SetThreads = void (*)(int);
  auto set = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (!set) return false;
  set(1);
  return true;
}

Service::Service(gallery::Gallery& gallery, EmbedderFactory embedders, ServiceOptions options)
    : impl_(std::make_unique<Impl>(gallery, std::move(embedders), std::move(options))) {
  Impl& im = *impl_;
  const int threads = std::max(1, im.ctx.options.threads);
  im.server.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  // Bodies without Content-Length (chunked) are cut by httplib at the largest limit.
  im.server.set_payload_max_length(static_cast<size_t>(
      std::max(im.ctx.options.limits.max_body_bytes, im.ctx.options.limits.max_image_bytes + kMultipartOverhead)));
  im.server.set_tcp_nodelay(true);  // answers go out at once, not after the client's delayed ACK (~40 ms)
  im.server.set_keep_alive_timeout(2);  // an idle keep-alive connection delays shutdown by at most this
  im.server.set_default_headers({{"X-Content-Type-Options", "nosniff"}, {"Cache-Control", "no-store"}});
  for (const auto& r : routes()) im.patterns.emplace_back(r.pattern);
  for (const auto& r : routes()) {
    const Route* route = &r;
    auto run = [&im, route](const httplib::Request& req, httplib::Response& res) { im.dispatch(*route, req, res); };
    if (std::string(r.method) == "GET") im.server.Get(r.pattern, run);
    else im.server.Post(r.pattern, run);
  }
  im.server.set_pre_routing_handler([&im](const httplib::Request& req, httplib::Response& res) { return im.before(req, res); });
  im.server.set_logger([&im](const httplib::Request& req, const httplib::Response& res) { im.after(req, res); });
  // Answers httplib makes itself (no route, a body over the limit, a malformed request)
  // become JSON errors like the handlers' ones.
  im.server.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string msg = "HTTP " + std::to_string(res.status);
    if (res.status == 404) msg = "no route " + req.method + " " + req.path + "; the routes are listed in docs/API.md";
    if (res.status == 413) msg = "request body larger than the server's limit";
    if (res.status == 400) msg = "malformed HTTP request";
    send_error(res, res.status, msg);
    return httplib::Server::HandlerResponse::Handled;
  }));
}

Service::~Service() {
  shutdown();
  impl_->ctx.backfill.stop_and_join();
}

int Service::bind(const std::string& host, int port) { return impl_->listener.bind(host, port, "serve"); }

void Service::run() {
  Impl& im = *impl_;
  im.listener.run();  // until shutdown(); the requests in flight are answered
  shutdown();
  im.ctx.backfill.stop_and_join();
  im.ctx.gallery.flush_caches();  // the reader holds the search caches
  if (im.ctx.options.log) im.ctx.options.log("stopped: requests answered, backfill at a batch boundary, caches written");
}

void Service::shutdown() {
  Impl& im = *impl_;
  // Each step may run twice (run() ends with a shutdown() too): flags, a pause.
  im.ctx.stopping.store(true);
  im.ctx.backfill.pause();
  im.listener.request_stop();
}

}  // namespace dualtune::serve

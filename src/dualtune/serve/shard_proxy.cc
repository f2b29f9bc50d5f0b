#include "dualtune/serve/shard_proxy.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "dualtune/gallery/vector_index.h"
#include "dualtune/serve/listener.h"
#include "dualtune/serve/request.h"
#include "dualtune/util/error.h"

namespace dualtune::serve {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

/// A shard's answer: status and body, or status 0 and the reason it could not be asked.
struct Reply {
  int status = 0;
  std::string body, error;
};

/// One shard: its URL and idle keep-alive connections (a connection serves one request
/// at a time; concurrent requests take more of them).
class Link {
 public:
  Link(std::string url, int timeout_ms) : url_(std::move(url)), timeout_ms_(timeout_ms) {}
  const std::string& url() const { return url_; }

  Reply call(const std::string& method, const std::string& path, const std::string& body) {
    std::unique_ptr<httplib::Client> c = take();
    Reply r;
    httplib::Result res = method == "GET" ? c->Get(path.c_str()) : c->Post(path.c_str(), body, "application/json");
    if (!res) {
      r.error = httplib::to_string(res.error());
      return r;  // the connection is dropped with c
    }
    r.status = res->status;
    r.body = std::move(res->body);
    std::lock_guard<std::mutex> lk(mu_);
    idle_.push_back(std::move(c));
    return r;
  }

 private:
  std::unique_ptr<httplib::Client> take() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        return c;
      }
    }
    auto c = std::make_unique<httplib::Client>(url_);
    c->set_keep_alive(true);
    c->set_tcp_nodelay(true);
    const auto s = std::chrono::milliseconds(timeout_ms_);
    c->set_connection_timeout(s);
    c->set_read_timeout(s);
    c->set_write_timeout(s);
    return c;
  }

  std::string url_;
  int timeout_ms_;
  std::mutex mu_;
  std::vector<std::unique_ptr<httplib::Client>> idle_;
};

json parse_or_null(const std::string& body) {
  try {
    return json::parse(body);
  } catch (const json::exception&) {
    return nullptr;
  }
}

/// The shard's error message, or its body's first bytes.
std::string shard_message(const Reply& r) {
  const json j = parse_or_null(r.body);
  if (j.is_object() && j.contains("error") && j["error"].is_string()) return j["error"].get<std::string>();
  return r.body.substr(0, 200);
}

}  // namespace

struct ShardProxy::Impl {
  ProxyOptions options;
  std::vector<std::unique_ptr<Link>> links;  ///< by shard index
  httplib::Server server;
  Listener listener{server};

  /// Asks every shard at once (the calling thread asks shard 0).
  std::vector<Reply> fan_out(const std::string& method, const std::string& path, const std::string& body) {
    std::vector<std::future<Reply>> rest;
    for (size_t s = 1; s < links.size(); ++s)
      rest.push_back(std::async(std::launch::async, [&, s] { return links[s]->call(method, path, body); }));
    std::vector<Reply> out;
    out.push_back(links[0]->call(method, path, body));
    for (auto& f : rest) out.push_back(f.get());
    return out;
  }

  /// 503 for an unreachable or unavailable shard, the shard's own 4xx/5xx otherwise;
  /// false when every shard answered 200.
  bool refuse_failures(const std::vector<Reply>& replies, httplib::Response& res) {
    for (size_t s = 0; s < replies.size(); ++s) {
      const Reply& r = replies[s];
      const std::string who = "shard " + std::to_string(s) + "/" + std::to_string(replies.size()) + " (" + links[s]->url() + ")";
      if (r.status == 0) {
        send_error(res, 503, who + " is unreachable: " + r.error + "; expected every shard to answer (a top-k "
                                                                    "without a shard's items would be wrong)");
        return true;
      }
      if (r.status != 200) {
        send_error(res, r.status, r.status == 503 ? who + ": " + shard_message(r) : shard_message(r));
        return true;
      }
    }
    return false;
  }

  void search(const httplib::Request& req, httplib::Response& res) {
    const auto t0 = Clock::now();
    const json body = json_body(req);  // 400/415 here rather than n times from the shards
    if (body.contains("merge") && body["merge"].is_string()) {
      const std::string m = body["merge"].get<std::string>();
      HTTP_CHECK(m != "rank" && m != "aligned", 400, "merge '", m, "' is not exact over shards (it depends on every "
                 "shard's items: ranks within a version, or a fit on a sample of the gallery); expected \"merge\": "
                 "\"calibrated\" or \"raw\", or a search of an unsharded `dualtune serve`");
    }
    const auto replies = fan_out("POST", "/api/search", req.body);
    if (refuse_failures(replies, res)) return;
    std::vector<json> answers;
    for (const auto& r : replies) answers.push_back(parse_or_null(r.body));
    const json& first = answers[0];
    for (size_t s = 0; s < answers.size(); ++s) {
      const json& a = answers[s];
      HTTP_CHECK(a.is_object() && a.contains("results") && a["results"].is_array() && a.contains("merge"), 502,
                 "shard ", s, " (", links[s]->url(), ") answered 200 without the JSON of /api/search");
      HTTP_CHECK(a["model"] == first["model"] && a["merge"] == first["merge"] && a["k"] == first["k"] &&
                     a["results"].size() == first["results"].size(),
                 502, "shard ", s, " (", links[s]->url(), ") answered for model ", a["model"].dump(), ", merge ",
                 a["merge"].dump(), ", k ", a["k"].dump(), ", ", a["results"].size(), " queries; shard 0 for ",
                 first["model"].dump(), ", ", first["merge"].dump(), ", ", first["k"].dump(), ", ", first["results"].size(),
                 " (are the shards serving different galleries or versions of dualtune?)");
    }
    const std::string merge = first["merge"].get<std::string>();
    HTTP_CHECK(merge == "raw" || merge == "calibrated", 400, "merge '", merge, "' is not exact over shards (it depends "
               "on every shard's items: ranks within a version, or a fit on a sample of the gallery); expected "
               "\"merge\": \"calibrated\" or \"raw\", or a search of an unsharded `dualtune serve`");
    const int64_t k = first["k"].get<int64_t>();
    json results = json::array();
    for (size_t i = 0; i < first["results"].size(); ++i) {
      std::vector<const json*> hits;
      for (const auto& a : answers)
        for (const auto& h : a["results"][i]) hits.push_back(&h);
      // topk.h's order: merge key descending, then item id ascending. The keys are
      // float32 values printed round-trip exactly, so they compare as the shards' did.
      std::sort(hits.begin(), hits.end(), [](const json* x, const json* y) {
        const float kx = (*x)["merge_key"].get<float>(), ky = (*y)["merge_key"].get<float>();
        if (kx != ky) return kx > ky;
        return (*x)["id"].get<int64_t>() < (*y)["id"].get<int64_t>();
      });
      json merged = json::array();
      for (size_t j = 0; j < hits.size() && static_cast<int64_t>(j) < k; ++j) {
        json h = *hits[j];
        h["rank"] = j + 1;
        merged.push_back(std::move(h));
      }
      results.push_back(std::move(merged));
    }
    json query = first["query"];
    json shard_ms = json::array();
    for (const auto& a : answers) shard_ms.push_back(a["query"].value("search_ms", 0.0));
    query["shard_search_ms"] = shard_ms;
    query["search_ms"] = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    send_json(res, {{"model", first["model"]},
                    {"merge", merge},
                    {"index", first["index"]},
                    {"k", k},
                    {"shards", links.size()},
                    {"query", query},
                    {"results", results}});
  }

  void health(httplib::Response& res) {
    const auto replies = fan_out("GET", "/api/health", "");
    json shards = json::array();
    bool ok = true;
    for (size_t s = 0; s < replies.size(); ++s) {
      const Reply& r = replies[s];
      ok &= r.status == 200;
      shards.push_back({{"url", links[s]->url()},
                        {"status", r.status},
                        {"answer", r.status == 0 ? json(r.error) : parse_or_null(r.body)}});
    }
    send_json(res, {{"status", ok ? "ok" : "degraded"}, {"shards", shards}}, ok ? 200 : 503);
  }

  void guarded(httplib::Response& res, const std::function<void()>& f) {
    try {
      f();
    } catch (const HttpError& e) {
      send_error(res, e.status, e.what());
    } catch (const std::exception& e) {
      send_error(res, 500, e.what());
    }
  }
};

ShardProxy::ShardProxy(ProxyOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& im = *impl_;
  im.options = std::move(options);
  const size_t n = im.options.shards.size();
  DT_CHECK(n >= 1, "proxy: expected at least one shard URL (--shards http://HOST:PORT,...), found none");
  // Each shard says which one it is; the links are kept in shard order.
  std::vector<std::unique_ptr<Link>> by_index(n);
  std::string uuid;
  for (const auto& url : im.options.shards) {
    DT_CHECK(url.rfind("http://", 0) == 0, "proxy: expected a shard URL http://HOST:PORT, found '", url, "'");
    auto link = std::make_unique<Link>(url, im.options.timeout_ms);
    const Reply r = link->call("GET", "/api/health", "");
    DT_CHECK(r.status == 200, "proxy: shard ", url, " does not answer GET /api/health (",
             r.status == 0 ? r.error : "HTTP " + std::to_string(r.status) + ": " + shard_message(r),
             "); expected a running `dualtune serve GALLERY --shard I/", n, "`");
    const json h = parse_or_null(r.body);
    const std::string shard_text = h.is_object() ? h.value("shard", "") : "";
    gallery::Shard sh;
    try {
      sh = gallery::Shard::parse(shard_text);
    } catch (const Error&) {
      DT_THROW("proxy: shard ", url, " does not say which shard it serves (its /api/health has shard '", shard_text,
               "'); expected a `dualtune serve --shard I/N` of this version");
    }
    DT_CHECK(sh.count == static_cast<int64_t>(n), "proxy: ", url, " serves shard ", sh.str(), ", expected one of ", n,
             " shards (as many as --shards lists)");
    DT_CHECK(!by_index[static_cast<size_t>(sh.index)], "proxy: ", url, " and ", by_index[static_cast<size_t>(sh.index)]
             ? by_index[static_cast<size_t>(sh.index)]->url() : "", " both serve shard ", sh.str(), "; expected each of 0..",
             n - 1, " once");
    const std::string g = h.value("gallery", "");
    DT_CHECK(uuid.empty() || g == uuid, "proxy: ", url, " serves gallery ", g, ", the other shards gallery ", uuid,
             "; expected shards of one gallery");
    uuid = g;
    by_index[static_cast<size_t>(sh.index)] = std::move(link);
  }
  im.links = std::move(by_index);

  const int threads = std::max(1, im.options.threads);
  im.server.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  im.server.set_tcp_nodelay(true);
  im.server.set_keep_alive_timeout(2);
  im.server.set_default_headers({{"X-Content-Type-Options", "nosniff"}, {"Cache-Control", "no-store"}});
  im.server.Post("/api/search", [&im](const httplib::Request& req, httplib::Response& res) {
    im.guarded(res, [&] { im.search(req, res); });
  });
  im.server.Get("/api/health", [&im](const httplib::Request&, httplib::Response& res) {
    im.guarded(res, [&] { im.health(res); });
  });
  im.server.Get("/api/status", [&im](const httplib::Request&, httplib::Response& res) {
    im.guarded(res, [&] {
      const Reply r = im.links[0]->call("GET", "/api/status", "");
      if (im.refuse_failures({r}, res)) return;
      res.set_content(r.body, "application/json");
    });
  });
  im.server.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    send_error(res, res.status, res.status == 404 ? "no route " + req.method + " " + req.path +
                                                        " on a shard proxy; it serves POST /api/search, GET /api/health "
                                                        "and GET /api/status (docs/API.md)"
                                                  : "HTTP " + std::to_string(res.status));
    return httplib::Server::HandlerResponse::Handled;
  }));
  if (im.options.log)
    im.server.set_logger([&im](const httplib::Request& req, const httplib::Response& res) {
      im.options.log(req.method + " " + req.path + " " + std::to_string(res.status));
    });
}

ShardProxy::~ShardProxy() { shutdown(); }

int ShardProxy::bind(const std::string& host, int port) { return impl_->listener.bind(host, port, "proxy"); }

void ShardProxy::run() { impl_->listener.run(); }

void ShardProxy::shutdown() { impl_->listener.request_stop(); }

}  // namespace dualtune::serve

// The JSON API against a real server on a free loopback port: every read route, search
// by posted embedding / gallery item / uploaded image checked against scores computed
// here from the images, and each bad request with its status and message.
#include <algorithm>
#include <map>
#include <numeric>

#include "dualtune/data/image_decode.h"
#include "serve_fixtures.h"

using namespace dualtune;
using namespace dualtune::serve;
using namespace dualtune::serve::testing;
using nlohmann::json;

namespace {

class ServeApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root = gallery::fixtures::temp_dir("serve_api_images");
    paths = write_images(root);
  }
  void SetUp() override {
    dir = gallery::fixtures::temp_dir(std::string("serve_api_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    g = transition_gallery(dir + "/g", root);
  }
  ServiceOptions options() {
    ServiceOptions o;
    o.token = kToken;
    o.threads = 4;
    return o;
  }
  static data::Image image(size_t i) { return data::decode_image_file(paths[i]); }
  static std::string png(size_t i) { return read_file(paths[i]); }
  /// Hits expected for a query vector of dim 24 against the gallery with the given keys
  /// backfilled (new/new over 24 components) and the rest old (first 16), raw merge:
  /// (key, score) best first, ties by gallery order.
  static std::vector<std::pair<std::string, double>> expected_raw(const std::vector<float>& q,
                                                                   const std::vector<std::string>& backfilled, size_t k) {
    std::vector<std::pair<std::string, double>> all;
    for (size_t i = 0; i < paths.size(); ++i) {
      const bool nw = std::find(backfilled.begin(), backfilled.end(), paths[i]) != backfilled.end();
      all.emplace_back(paths[i], cosine_prefix(q, pixel_vector(image(i), nw ? 24 : 16)));
    }
    std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    all.resize(k);
    return all;
  }
  static std::string root;
  static std::vector<std::string> paths;
  std::string dir;
  std::unique_ptr<gallery::Gallery> g;
};
std::string ServeApi::root;
std::vector<std::string> ServeApi::paths;

json search(httplib::Client& c, const json& body) {
  return body_json(c.Post("/api/search", body.dump(), "application/json"));
}

}  // namespace

TEST_F(ServeApi, HealthAndStatusDescribeTheGalleryInTransition) {
  TestServer s(*g, options());
  auto c = s.client();
  const auto h = c.Get("/api/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(h->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(body_json(h)["status"], "ok");
  EXPECT_EQ(body_json(h)["items"], 24);

  const json st = body_json(c.Get("/api/status"));
  EXPECT_EQ(st["gallery"]["items"], 24);
  ASSERT_EQ(st["models"].size(), 2u);
  EXPECT_EQ(st["models"][0]["name"], "old");
  EXPECT_EQ(st["models"][0]["role"], "deployed");
  EXPECT_EQ(st["models"][0]["dim"], 16);
  EXPECT_EQ(st["models"][0]["embeddings"], 24);
  EXPECT_DOUBLE_EQ(st["models"][0]["backfilled"].get<double>(), 1.0);
  EXPECT_EQ(st["models"][1]["name"], "new");
  EXPECT_EQ(st["models"][1]["role"], "rolling_out");
  EXPECT_EQ(st["models"][1]["embeddings"], 0);
  EXPECT_EQ(st["versions"][0]["kind"], "old");
  EXPECT_EQ(st["versions"][1]["kind"], "new");
  EXPECT_EQ(st["query_model"], "new");
  EXPECT_EQ(st["backfill"]["state"], "idle");
  EXPECT_EQ(st["backfill"]["running"], false);
  EXPECT_EQ(st["server"]["writes"], true);
}

TEST_F(ServeApi, SearchByPostedEmbeddingMatchesScoresComputedFromTheImages) {
  TestServer s(*g, options());
  auto c = s.client();
  const auto q = pixel_vector(image(7), 24);
  const json r = search(c, {{"model", "new"}, {"k", 5}, {"merge", "raw"}, {"vector", q}});
  ASSERT_EQ(r["results"].size(), 1u);
  const auto& hits = r["results"][0];
  const auto want = expected_raw(q, {}, 5);
  ASSERT_EQ(hits.size(), 5u);
  for (size_t j = 0; j < 5; ++j) {
    EXPECT_EQ(hits[j]["rank"], j + 1);
    EXPECT_EQ(hits[j]["key"], want[j].first) << j;
    EXPECT_NEAR(hits[j]["score"].get<double>(), want[j].second, 1e-5) << j;
    EXPECT_EQ(hits[j]["version"], "old");  // nothing backfilled: new queries meet old embeddings
    EXPECT_EQ(hits[j]["embedding"], "old");
  }
  EXPECT_EQ(hits[0]["key"], paths[7]);  // the image's own old embedding: the first 16 components agree
  EXPECT_NEAR(hits[0]["score"].get<double>(), 1.0, 1e-5);
  EXPECT_EQ(hits[0]["label"], "class1");
  EXPECT_EQ(r["model"], "new");
  EXPECT_EQ(r["merge"], "raw");
  EXPECT_EQ(r["k"], 5);

  // Several queries at once; the default merge without calibrations is raw.
  const json two = search(c, {{"k", 3}, {"vectors", {pixel_vector(image(0), 24), pixel_vector(image(23), 24)}}});
  EXPECT_EQ(two["merge"], "raw");
  ASSERT_EQ(two["results"].size(), 2u);
  EXPECT_EQ(two["results"][0][0]["key"], paths[0]);
  EXPECT_EQ(two["results"][1][0]["key"], paths[23]);

  // Old clients: a query of the deployed model scores old embeddings only.
  const json old = search(c, {{"model", "old"}, {"k", 1}, {"vector", pixel_vector(image(5), 16)}});
  EXPECT_EQ(old["results"][0][0]["key"], paths[5]);
  EXPECT_EQ(old["results"][0][0]["embedding"], "old");
}

TEST_F(ServeApi, SearchByUploadedImageAndByGalleryItemEmbedTheImageWithTheQueryModel) {
  TestServer s(*g, options());
  auto c = s.client();
  const auto want = expected_raw(pixel_vector(image(10), 24), {}, 4);
  const json up = body_json(c.Post("/api/search/image?model=new&k=4&merge=raw", png(10), "image/png"));
  ASSERT_EQ(up["results"][0].size(), 4u);
  for (size_t j = 0; j < 4; ++j) {
    EXPECT_EQ(up["results"][0][j]["key"], want[j].first);
    EXPECT_NEAR(up["results"][0][j]["score"].get<double>(), want[j].second, 1e-5);
  }
  EXPECT_EQ(up["query"]["type"], "image");
  EXPECT_EQ(up["query"]["bytes"], png(10).size());

  // The same image as a multipart upload (what a browser form sends).
  httplib::MultipartFormDataItems form{{"image", png(10), "q.png", "image/png"}};
  const json mp = body_json(c.Post("/api/search/image?k=4&merge=raw", form));
  EXPECT_EQ(mp["results"], up["results"]);

  const json items = body_json(c.Get("/api/items?offset=10&limit=1"));
  const int64_t id = items["items"][0]["id"];
  EXPECT_EQ(items["items"][0]["key"], paths[10]);
  const json by_item = search(c, {{"item", id}, {"k", 4}, {"merge", "raw"}});
  EXPECT_EQ(by_item["results"], up["results"]);
  EXPECT_EQ(by_item["query"]["type"], "item");
  EXPECT_EQ(by_item["query"]["item"], id);
}

TEST_F(ServeApi, ItemsPageAndThumbnailsComeFromTheImageSources) {
  TestServer s(*g, options());
  auto c = s.client();
  const json page = body_json(c.Get("/api/items?offset=2&limit=3"));
  EXPECT_EQ(page["total"], 24);
  EXPECT_EQ(page["offset"], 2);
  ASSERT_EQ(page["items"].size(), 3u);
  EXPECT_EQ(page["items"][0]["key"], paths[2]);
  EXPECT_EQ(page["items"][0]["label"], "class0");
  EXPECT_EQ(page["items"][0]["versions"], json::array({"old"}));
  EXPECT_EQ(page["items"][0]["has_image"], true);

  const int64_t id = page["items"][1]["id"];
  const auto t = c.Get("/api/items/" + std::to_string(id) + "/image");
  ASSERT_TRUE(t);
  ASSERT_EQ(t->status, 200);
  EXPECT_EQ(t->get_header_value("Content-Type"), "image/png");
  const std::vector<uint8_t> bytes(t->body.begin(), t->body.end());
  const cv::Mat shown = cv::imdecode(bytes, cv::IMREAD_UNCHANGED);
  const cv::Mat source = cv::imread(paths[3], cv::IMREAD_UNCHANGED);
  ASSERT_EQ(shown.size(), source.size());  // 16 px: smaller than the thumbnail size, never enlarged
  EXPECT_EQ(cv::norm(shown, source, cv::NORM_INF), 0);
  // Shrunk to 8 px on request.
  const auto small = c.Get("/api/items/" + std::to_string(id) + "/image?size=8");
  const cv::Mat s8 = cv::imdecode(std::vector<uint8_t>(small->body.begin(), small->body.end()), cv::IMREAD_UNCHANGED);
  EXPECT_EQ(s8.rows, 8);
  EXPECT_EQ(s8.cols, 8);

  const auto missing = c.Get("/api/items/99999/image");
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(body_json(missing)["error"], "no item with id 99999");
  EXPECT_EQ(c.Get("/api/items?limit=0")->status, 400);
  EXPECT_EQ(body_json(c.Get("/api/items?limit=abc"))["error"],
            "query parameter limit must be an integer between 1 and 500, found 'abc'");
}

TEST_F(ServeApi, BadRequestsGetTheirStatusAndASpecificMessage) {
  ServiceOptions o = options();
  o.limits.max_body_bytes = 64 << 10;
  o.limits.max_image_bytes = 32 << 10;
  TestServer s(*g, o);
  auto c = s.client();
  auto expect = [](const httplib::Result& r, int status, const std::string& message) {
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, status) << r->body;
    EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
    const json j = json::parse(r->body);
    EXPECT_NE(j.value("error", std::string()).find(message), std::string::npos)
        << "expected '" << message << "' in: " << j.dump();
  };
  const std::vector<float> q15(15, 1.f), q16(16, 1.f), q24(24, 1.f);
  // Wrong dimension.
  expect(c.Post("/api/search", json{{"model", "new"}, {"vector", q15}}.dump(), "application/json"), 400,
         "\"vector\" has dimension 15; model 'new' embeds 24");
  expect(c.Post("/api/search", json{{"model", "old"}, {"vectors", {q16, q24}}}.dump(), "application/json"), 400,
         "vector 1 has dimension 24; model 'old' embeds 16");
  // Not an image.
  expect(c.Post("/api/search/image", std::string("{\"this\": \"is json\"}"), "image/png"), 415,
         "not an image: the 19 bytes (starting 7b 22 74 68 69 73 22 3a) do not decode");
  expect(c.Post("/api/search/image", png(0), "text/plain"), 415, "expected an image as body");
  // Oversized bodies: refused from their Content-Length.
  expect(c.Post("/api/search/image", std::string(40 << 10, 'x'), "image/png"), 413,
         "request body of 40960 bytes is larger than the limit of 32768 bytes of POST /api/search/image");
  expect(c.Post("/api/search", std::string(70 << 10, ' '), "application/json"), 413,
         "larger than the limit of 65536 bytes of POST /api/search");
  // ... and, sent chunked (no Content-Length), once read.
  const std::string chunked(40 << 10, 'x');
  expect(c.Post("/api/search/image",
                [&](size_t offset, httplib::DataSink& sink) {
                  if (offset < chunked.size()) sink.write(chunked.data() + offset, std::min<size_t>(4096, chunked.size() - offset));
                  else sink.done();
                  return true;
                },
                "image/png"),
         413, "request body of 40960 bytes is larger than the limit of 32768 bytes of POST /api/search/image");
  // Unknown model.
  expect(c.Post("/api/search", json{{"model", "nope"}, {"vector", q24}}.dump(), "application/json"), 404,
         "unknown model 'nope'; this gallery's models are 'old' (deployed), 'new' (rolling_out)");
  expect(c.Post("/api/search/image?model=nope", png(0), "image/png"), 404, "unknown model 'nope'");
  // k out of range.
  expect(c.Post("/api/search", json{{"k", 0}, {"vector", q24}}.dump(), "application/json"), 400,
         "\"k\" must be between 1 and 1000, found 0");
  expect(c.Post("/api/search", json{{"k", 1001}, {"vector", q24}}.dump(), "application/json"), 400,
         "\"k\" must be between 1 and 1000, found 1001");
  expect(c.Post("/api/search", json{{"k", "ten"}, {"vector", q24}}.dump(), "application/json"), 400,
         "\"k\" must be an integer between 1 and 1000, found \"ten\"");
  expect(c.Post("/api/search/image?k=5000", png(0), "image/png"), 400,
         "query parameter k must be between 1 and 1000, found 5000");
  // Malformed or ambiguous JSON.
  expect(c.Post("/api/search", std::string("{\"vector\": [1,"), "application/json"), 400, "body is not valid JSON");
  expect(c.Post("/api/search", json{{"vector", q24}}.dump(), "text/plain"), 415, "expected a JSON body");
  expect(c.Post("/api/search", json{{"k", 3}}.dump(), "application/json"), 400, "expected exactly one query");
  expect(c.Post("/api/search", json{{"vector", {1, "x"}}, {"model", "old"}}.dump(), "application/json"), 400,
         "has dimension 2; model 'old' embeds 16");
  std::vector<json> nan_vec(24, 1.0);
  nan_vec[3] = "NaN";
  expect(c.Post("/api/search", json{{"vector", nan_vec}}.dump(), "application/json"), 400,
         "\"vector\" holds \"NaN\"; expected finite numbers");
  std::vector<double> huge(24, 1.0);
  huge[0] = 1e300;  // finite as a double, not as float32
  expect(c.Post("/api/search", json{{"vector", huge}}.dump(), "application/json"), 400,
         "\"vector\" holds 1e+300; expected finite numbers (float32)");
  expect(c.Get("/api/items/99999999999999999999999/image"), 404, "no item with id 99999999999999999999999");
  expect(c.Post("/api/search", json{{"vector", q24}, {"merge", "best"}}.dump(), "application/json"), 400,
         "\"merge\": expected a merge raw, calibrated, rank or aligned, found 'best'");
  expect(c.Post("/api/search", json{{"vector", q24}, {"merge", "calibrated"}}.dump(), "application/json"), 409,
         "merge 'calibrated' for 'new' needs its score calibrations");
  expect(c.Post("/api/search", json{{"item", 4242}}.dump(), "application/json"), 404, "no item with id 4242");
  // Too many query vectors.
  expect(c.Post("/api/search", json{{"model", "old"}, {"vectors", std::vector<std::vector<float>>(257, std::vector<float>(16, 1.f))}}.dump(),
                "application/json"),
         413, "expected at most 256 query vectors per request, found 257");
  // Routes that do not exist, and a GET with a body.
  expect(c.Get("/api/nothing"), 404, "no route GET /api/nothing");
  expect(c.Get("/nothing.js"), 404, "no page file 'nothing.js'");
  // The server is still fine, and counted the errors.
  const json m = body_json(c.Get("/api/metrics"));
  int64_t errors = m["total"]["errors_4xx"];
  EXPECT_GE(errors, 20);
  EXPECT_EQ(m["total"]["errors_5xx"], 0);
}

TEST_F(ServeApi, MetricsCountRequestsAndErrorsPerRouteWithLatencyPercentiles) {
  TestServer s(*g, options());
  auto c = s.client();
  for (int i = 0; i < 10; ++i) c.Post("/api/search", json{{"k", 2}, {"vector", pixel_vector(image(i), 24)}}.dump(), "application/json");
  c.Post("/api/search", json{{"k", 0}, {"vector", pixel_vector(image(0), 24)}}.dump(), "application/json");
  c.Get("/api/status");
  const json m = body_json(c.Get("/api/metrics"));
  std::map<std::string, json> by_route;
  for (const auto& r : m["routes"]) by_route[r["route"]] = r;
  const json& sr = by_route.at("POST /api/search");
  EXPECT_EQ(sr["requests"], 11);
  EXPECT_EQ(sr["errors_4xx"], 1);
  EXPECT_EQ(sr["errors_5xx"], 0);
  EXPECT_GT(sr["p50_ms"].get<double>(), 0);
  EXPECT_LE(sr["p50_ms"].get<double>(), sr["p90_ms"].get<double>());
  EXPECT_LE(sr["p90_ms"].get<double>(), sr["p99_ms"].get<double>());
  EXPECT_LE(sr["p99_ms"].get<double>(), sr["max_ms"].get<double>());
  EXPECT_EQ(by_route.at("GET /api/status")["requests"], 1);
  EXPECT_EQ(m["total"]["requests"], 12);  // this request is recorded once answered
}

TEST_F(ServeApi, ThePageIsServedFromTheBinaryAndLoadsNothingFromElsewhere) {
  TestServer s(*g, options());
  auto c = s.client();
  const auto page = c.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_EQ(page->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(page->get_header_value("Content-Security-Policy").find("default-src 'self'"), std::string::npos);
  for (const std::string f : {"index.html", "app.js", "style.css", "favicon.svg"}) {
    const auto r = c.Get("/" + f);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << f;
    EXPECT_EQ(read_file(std::string(DUALTUNE_SOURCE_DIR) + "/src/dualtune/serve/www/" + f), r->body) << f;
    // Nothing fetched from the internet: no absolute URL in the page's files but the
    // SVG namespace name (an identifier, never fetched).
    std::string body = r->body;
    for (size_t p; (p = body.find("http://www.w3.org/2000/svg")) != std::string::npos;) body.erase(p, 26);
    EXPECT_EQ(body.find("http://"), std::string::npos) << f;
    EXPECT_EQ(body.find("https://"), std::string::npos) << f;
    for (size_t p = body.find("//"); p != std::string::npos; p = body.find("//", p + 2))
      EXPECT_EQ(body.compare(p, 3, "// "), 0) << f << ": '" << body.substr(p, 30) << "' (a protocol-relative URL?)";
  }
  EXPECT_EQ(page->body, c.Get("/index.html")->body);
}

// What the page says about the merge and the backfill order comes from /api/status: the
// fits stored for each model, the merge its searches use by default (the one a search
// without "merge" answers with) and the order a backfill without "order" would use.
TEST_F(ServeApi, StatusSaysWhichMergeAndBackfillOrderTheFitsDecide) {
  TestServer s(*g, options());
  auto c = s.client();
  const json q{{"k", 3}, {"vector", pixel_vector(image(5), 24)}};
  const auto model = [](const json& st, const std::string& name) {
    for (const auto& m : st["models"])
      if (m["name"] == name) return m;
    ADD_FAILURE() << "no model " << name << " in " << st.dump();
    return json();
  };
  // Nothing fitted: raw merge, random order.
  json st = body_json(c.Get("/api/status"));
  EXPECT_EQ(model(st, "new")["calibrated"], false);
  EXPECT_EQ(model(st, "new")["order_predictor"], false);
  EXPECT_EQ(model(st, "new")["merge"], "raw");
  EXPECT_EQ(st["backfill_order"], (json{{"model", "new"}, {"order", "random"}, {"from", "no_predictor"}}));
  EXPECT_EQ(search(c, q)["merge"], "raw");

  // The predictor alone (an unlabelled training set): uncertainty order, still raw merge.
  std::vector<float> old_t, new_t;
  std::vector<int64_t> labels;
  for (size_t i = 0; i < paths.size(); ++i) {
    for (float x : pixel_vector(image(i), 16)) old_t.push_back(x);
    for (float x : pixel_vector(image(i), 24)) new_t.push_back(x);
    labels.push_back(static_cast<int64_t>(i / 6));
  }
  const auto n = static_cast<int64_t>(paths.size());
  g->fit_transition("new", n, old_t.data(), new_t.data(), nullptr);
  st = body_json(c.Get("/api/status"));
  EXPECT_EQ(model(st, "new")["calibrated"], false);
  EXPECT_EQ(model(st, "new")["order_predictor"], true);
  EXPECT_EQ(model(st, "new")["merge"], "raw");
  EXPECT_EQ(st["backfill_order"], (json{{"model", "new"}, {"order", "uncertainty"}, {"from", "predictor"}}));

  // Both fits (`gallery calibrate` on labelled features): calibrated merge; old queries
  // meet only old embeddings and keep the raw one.
  g->fit_transition("new", n, old_t.data(), new_t.data(), labels.data());
  st = body_json(c.Get("/api/status"));
  EXPECT_EQ(model(st, "new")["calibrated"], true);
  EXPECT_EQ(model(st, "new")["merge"], "calibrated");
  EXPECT_EQ(model(st, "old")["calibrated"], false);
  EXPECT_EQ(model(st, "old")["order_predictor"], false);
  EXPECT_EQ(model(st, "old")["merge"], "raw");
  EXPECT_EQ(st["backfill_order"]["order"], "uncertainty");
  EXPECT_EQ(search(c, q)["merge"], "calibrated");
  EXPECT_EQ(search(c, json{{"model", "old"}, {"k", 3}, {"vector", pixel_vector(image(5), 16)}})["merge"], "raw");

  // A stored plan decides the order of the next backfill, whatever is fitted.
  auto r = c.Post("/api/backfill", bearer(kToken), json{{"order", "random"}, {"max_items", 4}, {"batch_size", 4}}.dump(),
                  "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  wait_backfill(c);
  st = body_json(c.Get("/api/status"));
  EXPECT_EQ(st["backfill"]["order"], "random");
  EXPECT_EQ(st["backfill_order"], (json{{"model", "new"}, {"order", "random"}, {"from", "plan"}}));

  // Nothing rolls out once the old model is retired: no backfill order.
  wait_backfill(c);
  ASSERT_EQ(c.Post("/api/backfill", bearer(kToken), json{{"batch_size", 4}}.dump(), "application/json")->status, 202);
  wait_backfill(c);
  ASSERT_EQ(c.Post("/api/models/old/retire", bearer(kToken), "", "application/json")->status, 200);
  st = body_json(c.Get("/api/status"));
  EXPECT_EQ(st["backfill_order"], nullptr);
  EXPECT_EQ(model(st, "new")["merge"], search(c, q)["merge"]);  // one version: the merge changes nothing
  EXPECT_EQ(model(st, "old")["merge"], nullptr);
}

// Write routes against a real server: the bearer-token rule, adding items (posted
// embeddings and uploaded images), a backfill started, paused at a batch boundary and
// resumed to exactly the vectors of an uninterrupted one, a shutdown in the middle of a
// backfill, retire; and the curve and report routes over files written by the
// evaluation code.
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "dualtune/data/image_decode.h"
#include "dualtune/eval/evaluate.h"
#include "dualtune/gallery/store.h"
#include "dualtune/report/report.h"
#include "serve_fixtures.h"

using namespace dualtune;
using namespace dualtune::serve;
using namespace dualtune::serve::testing;
using dualtune::gallery::fixtures::vectors_by_key;
using nlohmann::json;
using std::chrono::milliseconds;

namespace {

class ServeWrite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root = gallery::fixtures::temp_dir("serve_write_images");
    paths = write_images(root);
  }
  void SetUp() override {
    dir = gallery::fixtures::temp_dir(std::string("serve_write_") +
                                      ::testing::UnitTest::GetInstance()->current_test_info()->name());
    g = transition_gallery(dir + "/g", root);
  }
  static ServiceOptions options(const std::string& token = kToken) {
    ServiceOptions o;
    o.token = token;
    o.threads = 4;
    return o;
  }
  static std::string root;
  static std::vector<std::string> paths;
  std::string dir;
  std::unique_ptr<gallery::Gallery> g;
};
std::string ServeWrite::root;
std::vector<std::string> ServeWrite::paths;

json post(httplib::Client& c, const std::string& path, const json& body, const std::string& token = kToken,
          int* status = nullptr) {
  const auto r = c.Post(path, bearer(token), body.dump(), "application/json");
  if (status) *status = r ? r->status : -1;
  return body_json(r);
}

/// The calling thread's niceness (Linux: per thread).
int thread_nice() { return ::getpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid))); }

/// A PixelEmbedder that records the niceness of every thread it embeds on.
class NiceRecorder : public PixelEmbedder {
 public:
  NiceRecorder(int64_t dim, std::mutex& mu, std::vector<int>& seen) : PixelEmbedder(dim), mu_(mu), seen_(seen) {}
  void embed(const std::vector<std::vector<gallery::ImageRef>>& batches,
             const std::function<bool(gallery::EmbeddedBatch&)>& on_batch) override {
    {
      std::lock_guard<std::mutex> lk(mu_);
      seen_.push_back(thread_nice());
    }
    PixelEmbedder::embed(batches, on_batch);
  }

 private:
  std::mutex& mu_;
  std::vector<int>& seen_;
};

}  // namespace

TEST_F(ServeWrite, TheBackfillRunsAtItsNicenessAndImageSearchesDoNot) {
  const int base = thread_nice();
  for (const int nice : {7, 0}) {
    SCOPED_TRACE("backfill_nice " + std::to_string(nice));
    g = transition_gallery(dir + "/g" + std::to_string(nice), root);
    std::mutex mu;
    std::vector<int> seen;
    auto o = options();
    o.backfill_nice = nice;
    TestServer s(*g, o, [&](const gallery::ModelInfo& m) { return std::make_unique<NiceRecorder>(m.dim, mu, seen); });
    auto c = s.client();
    std::ifstream is(paths[3], std::ios::binary);
    const std::string png((std::istreambuf_iterator<char>(is)), std::istreambuf_iterator<char>());
    const json found = body_json(c.Post("/api/search/image?model=new&k=1", png, "image/png"));
    EXPECT_EQ(found["results"][0][0]["key"], paths[3]) << found.dump();
    int status = 0;
    post(c, "/api/backfill", {{"batch_size", 8}}, kToken, &status);
    EXPECT_EQ(status, 202);
    EXPECT_EQ(wait_backfill(c)["state"], "finished");
    // The search embedded on an HTTP worker at the process's niceness; the backfill (one
    // embed call for its batches) on its own thread, `nice` higher (at most 19).
    std::lock_guard<std::mutex> lk(mu);
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen[0], base);
    EXPECT_EQ(seen[1], std::min(19, base + nice));
  }
}

TEST_F(ServeWrite, WriteRoutesNeedTheBearerTokenReadRoutesDoNot) {
  TestServer s(*g, options());
  auto c = s.client();
  for (const std::string route : {"/api/backfill", "/api/backfill/pause", "/api/items", "/api/models/old/retire"}) {
    const auto none = c.Post(route, "{}", "application/json");
    ASSERT_TRUE(none);
    EXPECT_EQ(none->status, 401) << route;
    EXPECT_EQ(none->get_header_value("WWW-Authenticate"), "Bearer realm=\"dualtune\"");
    EXPECT_NE(body_json(none)["error"].get<std::string>().find("expected the header 'Authorization: Bearer <token>'"),
              std::string::npos);
    const auto wrong = c.Post(route, bearer(kToken + "x"), "{}", "application/json");
    EXPECT_EQ(wrong->status, 401) << route;
    EXPECT_EQ(body_json(wrong)["error"], "the bearer token does not match the server's --token-file");
    const auto prefix = c.Post(route, bearer(kToken.substr(0, 10)), "{}", "application/json");
    EXPECT_EQ(prefix->status, 401) << route;
  }
  // The gallery did not change.
  EXPECT_EQ(g->status().backfill.planned, 0);
  EXPECT_EQ(g->model("old").role, gallery::Role::kDeployed);
  // Read routes need no token, the search route included.
  for (const std::string route : {"/api/health", "/api/status", "/api/items", "/api/backfill", "/api/metrics", "/"})
    EXPECT_EQ(c.Get(route)->status, 200) << route;
  EXPECT_EQ(c.Post("/api/search", json{{"vector", std::vector<float>(24, 1.f)}}.dump(), "application/json")->status, 200);
  // With the token, a write route works.
  int status = 0;
  post(c, "/api/backfill", {{"batch_size", 8}}, kToken, &status);
  EXPECT_EQ(status, 202);
  wait_backfill(c);
}

TEST_F(ServeWrite, WithoutATokenFileWriteRoutesAreDisabled) {
  TestServer s(*g, options(""));
  auto c = s.client();
  const auto r = c.Post("/api/backfill", bearer(kToken), "{}", "application/json");
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(body_json(r)["error"], "POST /api/backfill changes the gallery and is disabled: the server was started without --token-file");
  EXPECT_EQ(body_json(c.Get("/api/status"))["server"]["writes"], false);
}

TEST_F(ServeWrite, BackfillRunsToTheEndAndNewQueriesThenMeetNewEmbeddings) {
  TestServer s(*g, options());
  auto c = s.client();
  int status = 0;
  const json started = post(c, "/api/backfill", {{"batch_size", 5}, {"order", "random"}, {"seed", 3}}, kToken, &status);
  EXPECT_EQ(status, 202);
  EXPECT_EQ(started["model"], "new");
  const json end = wait_backfill(c);
  EXPECT_EQ(end["state"], "finished");
  EXPECT_EQ(end["planned"], 24);
  EXPECT_EQ(end["done"], 24);
  EXPECT_EQ(end["order"], "random");
  EXPECT_DOUBLE_EQ(end["fraction"].get<double>(), 1.0);
  EXPECT_EQ(end["last_run"]["embedded"], 24);
  EXPECT_EQ(end["last_run"]["finished"], true);
  const json st = body_json(c.Get("/api/status"));
  EXPECT_DOUBLE_EQ(st["models"][1]["backfilled"].get<double>(), 1.0);
  // Every vector is the new model's embedding of the item's image.
  for (const auto& [key, v] : vectors_by_key(gallery_at(dir + "/g"), "new"))
    EXPECT_EQ(v, pixel_vector(data::decode_image_file(key), 24)) << key;
  // New queries now score new embeddings (all 24 components).
  const auto q = pixel_vector(data::decode_image_file(paths[4]), 24);
  const json r = body_json(c.Post("/api/search", json{{"k", 3}, {"merge", "raw"}, {"vector", q}}.dump(), "application/json"));
  for (const auto& h : r["results"][0]) {
    EXPECT_EQ(h["embedding"], "new");
    EXPECT_NEAR(h["score"].get<double>(), cosine_prefix(q, pixel_vector(data::decode_image_file(h["key"]), 24)), 1e-5);
  }
  EXPECT_EQ(r["results"][0][0]["key"], paths[4]);
  // Nothing left: a second start finishes at once; a pause finds nothing running.
  post(c, "/api/backfill", json::object(), kToken, &status);
  EXPECT_EQ(status, 202);
  EXPECT_EQ(wait_backfill(c)["state"], "finished");
  const json p = post(c, "/api/backfill/pause", json::object(), kToken, &status);
  EXPECT_EQ(status, 409);
  EXPECT_EQ(p["error"], "no backfill is running (state: finished)");
}

TEST_F(ServeWrite, PausedBackfillStopsAtABatchBoundaryAndResumesToTheUninterruptedResult) {
  // Reference: the same plan run without interruption through the library.
  auto ref = transition_gallery(dir + "/ref", root);
  {
    PixelEmbedder e(24);
    gallery::BackfillOptions o;
    o.order = "random";
    o.seed = 11;
    o.batch_size = 3;
    ASSERT_TRUE(ref->backfill(o, e).finished);
  }
  TestServer s(*g, options(), pixel_factory(milliseconds(60)));
  auto c = s.client();
  int status = 0;
  post(c, "/api/backfill", {{"batch_size", 3}, {"order", "random"}, {"seed", 11}}, kToken, &status);
  ASSERT_EQ(status, 202);
  // Let a few batches commit, then pause.
  for (int i = 0; i < 200 && body_json(c.Get("/api/backfill"))["done"].get<int64_t>() < 6; ++i)
    std::this_thread::sleep_for(milliseconds(10));
  const json pausing = post(c, "/api/backfill/pause", json::object(), kToken, &status);
  EXPECT_EQ(status, 202);
  EXPECT_EQ(pausing["state"], "pausing");
  const json paused = wait_backfill(c);
  EXPECT_EQ(paused["state"], "paused");
  EXPECT_EQ(paused["last_run"]["cancelled"], true);
  const int64_t done = paused["done"];
  EXPECT_GE(done, 6);
  EXPECT_LT(done, 24);
  EXPECT_EQ(done % 3, 0) << "stopped inside a batch";
  EXPECT_EQ(static_cast<int64_t>(vectors_by_key(gallery_at(dir + "/g"), "new").size()), done);
  // Resume: same plan, same result as the uninterrupted run.
  post(c, "/api/backfill", json::object(), kToken, &status);
  ASSERT_EQ(status, 202);
  EXPECT_EQ(wait_backfill(c)["state"], "finished");
  EXPECT_EQ(vectors_by_key(gallery_at(dir + "/g"), "new"), vectors_by_key(gallery_at(dir + "/ref"), "new"));
  gallery::Plan a, b;
  ASSERT_TRUE(gallery::Store::open(gallery_at(dir + "/g"), true)->load_plan(g->model("new").version_id, a));
  ASSERT_TRUE(gallery::Store::open(gallery_at(dir + "/ref"), true)->load_plan(ref->model("new").version_id, b));
  EXPECT_EQ(a.items, b.items);
}

TEST_F(ServeWrite, ShutdownDuringABackfillStopsItAtABatchBoundaryAndALaterServerResumesIt) {
  {
    TestServer s(*g, options(), pixel_factory(milliseconds(80)));
    auto c = s.client();
    int status = 0;
    post(c, "/api/backfill", {{"batch_size", 4}}, kToken, &status);
    ASSERT_EQ(status, 202);
    for (int i = 0; i < 200 && body_json(c.Get("/api/backfill"))["done"].get<int64_t>() < 4; ++i)
      std::this_thread::sleep_for(milliseconds(10));
    // A request in flight while the shutdown begins still gets its answer.
    std::thread slow([&] {
      auto c2 = s.client();
      const auto r = c2.Post("/api/search/image?k=2", read_file(paths[1]), "image/png");
      ASSERT_TRUE(r);
      EXPECT_EQ(r->status, 200);
    });
    // Half of the query's 80 ms embedding: the request is accepted and in flight when the
    // shutdown begins, even on a loaded machine (5 ms lost that race under load).
    std::this_thread::sleep_for(milliseconds(40));
    s.stop();  // what SIGTERM does (cli/serve.cc)
    slow.join();
    // The listener is closed.
    EXPECT_FALSE(c.Get("/api/health"));
  }
  const auto bf = g->backfill_progress("new");
  EXPECT_GE(bf.done, 4);
  EXPECT_LT(bf.done, 24);
  EXPECT_EQ(bf.done % 4, 0);
  TestServer s2(*g, options());
  auto c = s2.client();
  int status = 0;
  post(c, "/api/backfill", json::object(), kToken, &status);
  EXPECT_EQ(wait_backfill(c)["state"], "finished");
  EXPECT_EQ(g->backfill_progress("new").done, 24);
  for (const auto& [key, v] : vectors_by_key(gallery_at(dir + "/g"), "new"))
    EXPECT_EQ(v, pixel_vector(data::decode_image_file(key), 24)) << key;
}

TEST_F(ServeWrite, BackfillRequestsAreCheckedBeforeAnythingStarts) {
  TestServer s(*g, options());
  auto c = s.client();
  int status = 0;
  json r = post(c, "/api/backfill", {{"batch_size", 0}}, kToken, &status);
  EXPECT_EQ(status, 400);
  EXPECT_EQ(r["error"], "\"batch_size\" must be between 1 and 4096, found 0");
  r = post(c, "/api/backfill", {{"batch_size", 100000}}, kToken, &status);
  EXPECT_EQ(status, 400);
  r = post(c, "/api/backfill", {{"order", "alphabetical"}}, kToken, &status);
  EXPECT_EQ(status, 400);
  EXPECT_EQ(r["error"], "\"order\" must be random or uncertainty, found 'alphabetical'");
  r = post(c, "/api/backfill", {{"order", "uncertainty"}}, kToken, &status);
  EXPECT_EQ(status, 409);
  EXPECT_NE(r["error"].get<std::string>().find("needs the predictor fitted by `gallery calibrate --model new`"),
            std::string::npos);
  r = post(c, "/api/backfill", {{"model", "old"}}, kToken, &status);
  EXPECT_EQ(status, 409);
  EXPECT_EQ(r["error"], "model 'old' is deployed; a backfill fills in the embeddings of the model that is rolling out");
  r = post(c, "/api/backfill", {{"model", "newer"}}, kToken, &status);
  EXPECT_EQ(status, 404);
  r = post(c, "/api/backfill", {{"max_seconds", -1}}, kToken, &status);
  EXPECT_EQ(status, 400);
  EXPECT_EQ(g->status().backfill.planned, 0);  // nothing was planned
  // One at a time.
  TestServer slow(*g, options(), pixel_factory(milliseconds(50)));
  auto cs = slow.client();
  post(cs, "/api/backfill", {{"batch_size", 2}}, kToken, &status);
  ASSERT_EQ(status, 202);
  r = post(cs, "/api/backfill", json::object(), kToken, &status);
  EXPECT_EQ(status, 409);
  EXPECT_NE(r["error"].get<std::string>().find("a backfill of 'new' is already running"), std::string::npos);
  post(cs, "/api/backfill/pause", json::object(), kToken, &status);
  wait_backfill(cs);
}

TEST_F(ServeWrite, AddItemsByPostedEmbeddingsAndByUploadedImages) {
  TestServer s(*g, options());
  auto c = s.client();
  int status = 0;
  // Embeddings of the deployed model for new keys.
  const std::vector<float> v(16, 0.5f);
  json r = post(c, "/api/items", {{"model", "old"}, {"items", {{{"key", "ext/1"}, {"label", "x"}, {"vector", v}}}}}, kToken,
                &status);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(r["added"], 1);
  EXPECT_EQ(r["vectors"], 1);
  r = post(c, "/api/items", {{"model", "old"}, {"items", {{{"key", "ext/1"}, {"vector", v}}}}}, kToken, &status);
  EXPECT_EQ(status, 409);
  EXPECT_NE(r["error"].get<std::string>().find("ext/1"), std::string::npos);
  r = post(c, "/api/items", {{"model", "old"}, {"items", {{{"key", "ext/2"}, {"vector", std::vector<float>(3, 1.f)}}}}},
           kToken, &status);
  EXPECT_EQ(status, 400);
  EXPECT_EQ(r["error"], "items[0]: expected \"vector\" with 16 numbers (model 'old' embeds 16), found 3 values");
  r = post(c, "/api/items", {{"model", "old"}, {"items", {{{"key", "d"}, {"vector", v}}, {{"key", "d"}, {"vector", v}}}}},
           kToken, &status);
  EXPECT_EQ(status, 400);
  EXPECT_EQ(r["error"], "items[1]: key 'd' appears twice in the request");

  // An uploaded image: stored under the gallery, embedded by both active models.
  cv::Mat img(16, 16, CV_8UC1, cv::Scalar(30));
  img(cv::Rect(9, 2, 6, 6)).setTo(250);
  std::vector<uint8_t> buf;
  cv::imencode(".png", img, buf);
  const std::string bytes(buf.begin(), buf.end());
  httplib::MultipartFormDataItems form{{"image", bytes, "new.png", "image/png"}, {"label", "class9", "", ""}};
  const auto up = c.Post("/api/items", bearer(kToken), form);
  ASSERT_TRUE(up);
  if (on_postgres()) {  // no directory beside a database gallery that every backfill worker could read
    EXPECT_EQ(up->status, 501) << up->body;
    EXPECT_NE(body_json(up)["error"].get<std::string>().find("is a PostgreSQL database: uploads need a directory every "
                                                             "backfill worker can read"),
              std::string::npos);
    EXPECT_EQ(body_json(up)["error"].get<std::string>().find(url_password(gallery_at(dir + "/g"))), std::string::npos);
    EXPECT_EQ(g->status().items, 25);  // nothing added
    return;
  }
  EXPECT_EQ(up->status, 200) << up->body;
  const json added = json::parse(up->body);
  EXPECT_EQ(added["added"], 1);
  EXPECT_EQ(added["vectors"], 2);
  const std::string key = added["keys"][0];
  EXPECT_EQ(key.rfind(dir + "/g/uploads/", 0), 0u) << key;
  EXPECT_EQ(read_file(key), bytes);
  EXPECT_EQ(g->status().items, 26);
  // (raw merge: the rank merge would spread the one new item over the list by design)
  const json found = body_json(c.Post("/api/search/image?k=1&merge=raw", bytes, "image/png"));
  EXPECT_EQ(found["results"][0][0]["key"], key);
  EXPECT_EQ(found["results"][0][0]["label"], "class9");
  EXPECT_EQ(found["results"][0][0]["embedding"], "new");  // added items carry every active model's embedding
  // Not an image.
  httplib::MultipartFormDataItems bad{{"image", "hello", "a.png", "image/png"}};
  const auto refused = c.Post("/api/items", bearer(kToken), bad);
  EXPECT_EQ(refused->status, 415);
  EXPECT_NE(body_json(refused)["error"].get<std::string>().find("image 0 ('a.png'): not an image"), std::string::npos);
}

TEST_F(ServeWrite, RetireIsRefusedUntilTheBackfillIsDoneThenPromotesTheNewModel) {
  TestServer s(*g, options());
  auto c = s.client();
  int status = 0;
  json r = post(c, "/api/models/old/retire", json::object(), kToken, &status);
  EXPECT_EQ(status, 409);
  EXPECT_NE(r["error"].get<std::string>().find("24 of 24 items have no embedding of 'new'"), std::string::npos);
  r = post(c, "/api/models/ghost/retire", json::object(), kToken, &status);
  EXPECT_EQ(status, 404);
  post(c, "/api/backfill", json::object(), kToken, &status);
  wait_backfill(c);
  r = post(c, "/api/models/old/retire", json::object(), kToken, &status);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(r["retired"], "old");
  EXPECT_EQ(r["deployed"], "new");
  const auto q = json{{"model", "old"}, {"vector", std::vector<float>(16, 1.f)}};
  const auto refused = c.Post("/api/search", q.dump(), "application/json");
  EXPECT_EQ(refused->status, 409);
  EXPECT_NE(body_json(refused)["error"].get<std::string>().find("model 'old' is retired"), std::string::npos);
  const json hit = body_json(c.Post("/api/search", json{{"k", 1}, {"vector", std::vector<float>(24, 1.f)}}.dump(),
                                    "application/json"));
  EXPECT_EQ(hit["model"], "new");
  EXPECT_EQ(hit["results"][0][0]["embedding"], "current");  // nothing rolls out any more
}

TEST_F(ServeWrite, CurveAndReportComeFromTheFilesBesideTheGallery) {
  auto o = options();
  // A database gallery has no directory beside it: --report and --curve name the files
  // (shown by their own names), and without them the answer says so.
  const std::string report = on_postgres() ? "report" : "g/report", curve_file = on_postgres() ? "curve" : "g/curve";
  if (on_postgres()) {
    TestServer bare(*g, o);
    auto c = bare.client();
    for (const std::string route : {"/api/report", "/api/curve"}) {
      const auto r = c.Get(route);
      EXPECT_EQ(r->status, 404);
      const std::string e = body_json(r)["error"];
      EXPECT_NE(e.find(" is a database, so expected serve --"), std::string::npos) << e;
      EXPECT_EQ(e.find(url_password(gallery_at(dir + "/g"))), std::string::npos) << e;
    }
    o.report_dir = dir + "/g/report";
    o.curve_file = dir + "/g/curve/curve.json";
  }
  TestServer s(*g, o);
  auto c = s.client();
  const auto none = c.Get("/api/report");
  EXPECT_EQ(none->status, 404);
  EXPECT_NE(body_json(none)["error"].get<std::string>().find("no compatibility report for this gallery: expected " +
                                                             report + "/report.json"),
            std::string::npos);
  EXPECT_EQ(c.Get("/api/curve")->status, 404);

  // The compatibility report of the two models on the gallery's images, by eval.
  features::FeatureSet old_f, new_f;
  for (auto* f : {&old_f, &new_f}) {
    const int64_t d = f == &old_f ? 16 : 24;
    f->n = static_cast<int64_t>(paths.size());
    f->d = d;
    for (size_t i = 0; i < paths.size(); ++i) {
      const auto v = pixel_vector(data::decode_image_file(paths[i]), d);
      f->features.insert(f->features.end(), v.begin(), v.end());
      f->labels.push_back(static_cast<int64_t>(i / 6));
      f->cams.push_back(-1);
      f->paths.push_back(paths[i]);
    }
  }
  eval::EvalOptions eo;
  eo.threads = 1;
  const auto rep = eval::evaluate_compatibility({eval::loo_model("old", old_f), eval::loo_model("new", new_f)}, "old", eo);
  report::write_report(rep, dir + "/g/report");
  const json r = body_json(c.Get("/api/report"));
  EXPECT_EQ(r["source"], report + "/report.json");  // named by the gallery, not the server's path
  EXPECT_EQ(r["upgrade"]["new_model"], "new");
  const auto& v = rep.upgrades[0].map;
  EXPECT_EQ(r["verdict"]["compatible"], v.compatible);
  EXPECT_NEAR(r["upgrade"]["verdict"]["map"]["new_old"].get<double>(), v.new_old, 1e-9);
  char pct[32];
  std::snprintf(pct, sizeof pct, "%.1f %%", 100 * v.new_old);
  const std::string text = r["verdict"]["text"];
  EXPECT_NE(text.find(v.compatible ? "'new' is compatible with 'old'" : "'new' is not compatible with 'old'"),
            std::string::npos) << text;
  EXPECT_NE(text.find(pct), std::string::npos) << text;
  for (const auto& p : r["plots"]) {
    const auto png = c.Get(p.get<std::string>());
    EXPECT_EQ(png->status, 200) << p;
    EXPECT_EQ(png->get_header_value("Content-Type"), "image/png");
  }
  EXPECT_EQ(c.Get("/api/report/plots/..%2Freport.json")->status, 404);

  // The backfill curve of the gallery (gallery/curve.h), as `gallery curve` writes it.
  post(c, "/api/backfill", json::object());
  wait_backfill(c);
  std::vector<int64_t> ids;
  const auto data = g->curve_data("new", &ids);
  gallery::CurveSpec spec;
  spec.order_name = "random";
  spec.order = g->curve_order("new", "random", 0, data, ids);
  const auto curves = gallery::backfill_curves(data, {spec}, {0, 0.5, 1}, 1);
  json jc = json::array();
  for (const auto& cv : curves) {
    json pts = json::array();
    for (const auto& p : cv.points) pts.push_back({{"fraction", p.fraction}, {"map", p.map}, {"top1", p.top1}});
    jc.push_back({{"order", cv.order}, {"merge", cv.merge}, {"area_map", cv.area_map}, {"points", pts}});
  }
  std::filesystem::create_directories(dir + "/g/curve");
  write_text_atomic(dir + "/g/curve/curve.json", json{{"title", "t"}, {"curves", jc}}.dump());
  const json curve = body_json(c.Get("/api/curve"));
  EXPECT_EQ(curve["source"], curve_file + "/curve.json");
  EXPECT_EQ(curve["curves"], jc);
  EXPECT_EQ(curve["current"]["model"], "new");
  EXPECT_DOUBLE_EQ(curve["current"]["fraction"].get<double>(), 1.0);
  EXPECT_TRUE(curve["plot"].is_null());
}

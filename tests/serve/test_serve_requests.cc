// Requests users sent that the service answered wrongly: numbers that overflow, wrong
// JSON types and out-of-range integers in every JSON body field (400 naming the field,
// never a 500), a POST with no body and no Content-Length (curl -X POST URL), and the
// server's own file system in the answers of unauthenticated routes.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <memory>

#include "serve_fixtures.h"

using namespace dualtune;
using namespace dualtune::serve;
using namespace dualtune::serve::testing;
using nlohmann::json;

namespace {

class ServeRequests : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root = gallery::fixtures::temp_dir("serve_requests_images");
    write_images(root);
  }
  void SetUp() override {
    dir = gallery::fixtures::temp_dir(std::string("serve_requests_") +
                                      ::testing::UnitTest::GetInstance()->current_test_info()->name());
    g = transition_gallery(dir + "/g", root);
  }
  static ServiceOptions options() {
    ServiceOptions o;
    o.token = kToken;
    o.threads = 2;
    return o;
  }
  static std::string root;
  std::string dir;
  std::unique_ptr<gallery::Gallery> g;
};
std::string ServeRequests::root;

/// Posts `body` (raw text, so it can hold 1e999) as JSON and expects `status` with every
/// piece of `message` in the error.
void expect_refused(httplib::Client& c, const std::string& path, const std::string& body, int status,
                    const std::vector<std::string>& message) {
  const auto r = c.Post(path, bearer(kToken), body, "application/json");
  ASSERT_TRUE(r) << body;
  EXPECT_EQ(r->status, status) << body << " -> " << r->body;
  const json j = json::parse(r->body, nullptr, false);
  ASSERT_TRUE(j.is_object() && j.contains("error")) << r->body;
  const std::string error = j["error"];
  for (const auto& m : message) EXPECT_NE(error.find(m), std::string::npos) << "expected '" << m << "' in: " << error;
}

std::string floats(int n, const std::string& first = "0.5") {
  std::string s = "[" + first;
  for (int i = 1; i < n; ++i) s += ", 0.5";
  return s + "]";
}

/// One loopback connection, written and read as bytes.
class RawConnection {
 public:
  explicit RawConnection(int port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~RawConnection() { ::close(fd_); }
  /// Sends `request` and returns the answer received within `seconds`: complete once its
  /// Content-Length is in, cut where the server closes or the time is up.
  std::string exchange(const std::string& request, double seconds) {
    if (!connected_) return "(no connection)";
    ::send(fd_, request.data(), request.size(), MSG_NOSIGNAL);
    std::string got;
    const auto t0 = std::chrono::steady_clock::now();
    auto complete = [&got] {
      const size_t head = got.find("\r\n\r\n");
      const size_t cl = got.find("Content-Length: ");
      return head != std::string::npos && cl != std::string::npos && cl < head &&
             got.size() >= head + 4 + std::stoul(got.substr(cl + 16));
    };
    while (!complete()) {
      const double left = seconds - std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      pollfd p{fd_, POLLIN, 0};
      if (left <= 0 || ::poll(&p, 1, static_cast<int>(left * 1000)) <= 0) break;
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    return got;
  }

 private:
  int fd_;
  bool connected_ = false;
};

std::string raw_exchange(int port, const std::string& request, double seconds) {
  return RawConnection(port).exchange(request, seconds);
}

/// The JSON body of the answer in `raw`.
json raw_body(const std::string& raw) {
  const size_t head = raw.rfind("\r\n\r\n");
  return head == std::string::npos ? json() : json::parse(raw.substr(head + 4), nullptr, false);
}

}  // namespace

TEST_F(ServeRequests, EveryJsonBodyFieldIsCheckedForTypeAndRangeAndNamedInA400) {
  TestServer s(*g, options());
  auto c = s.client();
  const std::string v24 = floats(24), v16 = floats(16);
  // Numbers a double cannot hold: nlohmann::json refuses them while parsing.
  expect_refused(c, "/api/search", R"({"vector": )" + floats(24, "1e999") + "}", 400,
                 {"\"vector[0]\" holds 1e999", "expected a finite number"});
  expect_refused(c, "/api/search", R"({"model": "old", "vectors": [)" + v16 + ", " + floats(16, "-1e999") + "]}", 400,
                 {"\"vectors[1][0]\" holds -1e999"});
  expect_refused(c, "/api/search", R"({"k": 1e999, "vector": )" + v24 + "}", 400, {"\"k\" holds 1e999"});
  expect_refused(c, "/api/backfill", R"({"max_seconds": 1e400})", 400, {"\"max_seconds\" holds 1e400"});
  expect_refused(c, "/api/items", R"({"model": "old", "items": [{"key": "a", "vector": )" + floats(16, "2e308") + "}]}",
                 400, {"\"items[0].vector[0]\" holds 2e308"});
  expect_refused(c, "/api/search", R"({"vector": [NaN]})", 400, {"body is not valid JSON (in \"vector[0]\")"});
  expect_refused(c, "/api/search", "[1, 2]", 400, {"expected a JSON object as body, found a JSON array"});
  // Finite as a double, not as a float32.
  expect_refused(c, "/api/search", R"({"vector": )" + floats(24, "-3.5e38") + "}", 400,
                 {"\"vector\" holds -3.5e+38; expected finite numbers (float32)"});
  expect_refused(c, "/api/items", R"({"model": "old", "items": [{"key": "a", "vector": )" + floats(16, "1e39") + "}]}",
                 400, {"items[0]: \"vector\" holds 1e+39; expected finite numbers (float32)"});
  // Integers: beyond int64 (nlohmann keeps 2^64 - 1 as unsigned), not integers, wrong types.
  expect_refused(c, "/api/search", R"({"k": 18446744073709551615, "vector": )" + v24 + "}", 400,
                 {"\"k\" must be between 1 and 1000, found 18446744073709551615"});
  expect_refused(c, "/api/search", R"({"k": 3.5, "vector": )" + v24 + "}", 400,
                 {"\"k\" must be an integer between 1 and 1000, found 3.5"});
  expect_refused(c, "/api/search", R"({"item": 18446744073709551615})", 400,
                 {"\"item\" must be between 0 and 9223372036854775807, found 18446744073709551615"});
  expect_refused(c, "/api/search", R"({"item": null})", 400, {"\"item\" must be an integer", "found null"});
  expect_refused(c, "/api/search", R"({"item": "4"})", 400, {"\"item\" must be an integer", "found \"4\""});
  expect_refused(c, "/api/search", R"({"vector": null})", 400, {"\"vector\" must be an array of 24 numbers, found null"});
  expect_refused(c, "/api/search", R"({"vectors": {"a": 1}})", 400, {"\"vectors\" must be a non-empty array", "found {\"a\":1}"});
  expect_refused(c, "/api/search", R"({"model": 5, "vector": )" + v24 + "}", 400, {"\"model\" must be a string, found 5"});
  expect_refused(c, "/api/search", R"({"index": ["flat"], "vector": )" + v24 + "}", 400,
                 {"\"index\" must be a string, found [\"flat\"]"});
  expect_refused(c, "/api/backfill", R"({"seed": 18446744073709551615})", 400,
                 {"\"seed\" must be between 0 and 9223372036854775807, found 18446744073709551615"});
  expect_refused(c, "/api/backfill", R"({"seed": -1})", 400, {"\"seed\" must be between 0 and"});
  expect_refused(c, "/api/backfill", R"({"max_items": 1e20})", 400, {"\"max_items\" must be an integer", "found 1e+20"});
  expect_refused(c, "/api/backfill", R"({"batch_size": true})", 400, {"\"batch_size\" must be an integer", "found true"});
  expect_refused(c, "/api/backfill", R"({"max_seconds": "10"})", 400, {"\"max_seconds\" must be a number of seconds"});
  expect_refused(c, "/api/backfill", R"({"replan": 1})", 400, {"\"replan\" must be true or false, found 1"});
  expect_refused(c, "/api/backfill", R"({"retry_failed": "no"})", 400, {"\"retry_failed\" must be true or false"});
  expect_refused(c, "/api/backfill", R"({"model": null, "order": 3})", 400, {"\"order\" must be a string, found 3"});
  expect_refused(c, "/api/items", R"({"model": "old", "items": [{"key": 5, "vector": )" + v16 + "}]}", 400,
                 {"items[0]: \"key\" must be a string, found 5"});
  expect_refused(c, "/api/items", R"({"model": "old", "items": [{"key": "a", "label": 7, "vector": )" + v16 + "}]}", 400,
                 {"items[0]: \"label\" must be a string, found 7"});
  expect_refused(c, "/api/items", R"({"model": "old", "skip_existing": "yes", "items": [{"key": "a", "vector": )" + v16 +
                                      "}]}",
                 400, {"\"skip_existing\" must be true or false, found \"yes\""});
  expect_refused(c, "/api/items", R"({"model": "old", "items": {"key": "a"}})", 400,
                 {"expected \"items\": a non-empty array", "found {\"key\":\"a\"}"});
  expect_refused(c, "/api/items", R"({"model": "old", "items": [{"key": "a", "vector": "0.5"}]})", 400,
                 {"items[0]: expected \"vector\" with 16 numbers", "found \"0.5\""});
  // Nothing above was a server error, nothing was written or started.
  const json m = body_json(c.Get("/api/metrics"));
  EXPECT_EQ(m["total"]["errors_5xx"], 0);
  EXPECT_EQ(g->status().items, 24);
  EXPECT_EQ(g->status().backfill.planned, 0);
}

TEST_F(ServeRequests, APostWithNoBodyAndNoContentLengthIsAnsweredAtOnce) {
  TestServer s(*g, options());
  // What curl 7.88 sends for `curl -X POST URL`: no Content-Length, no Transfer-Encoding.
  // httplib 0.11.4 alone waits for the connection to close (5 s), then answers 400.
  const std::string auth = "Authorization: Bearer " + kToken + "\r\n";
  std::string raw = raw_exchange(s.port, "POST /api/backfill/pause HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n", 3);
  EXPECT_EQ(raw.rfind("HTTP/1.1 409", 0), 0u) << raw;
  EXPECT_NE(raw_body(raw).value("error", "").find("no backfill is running (state: idle)"), std::string::npos) << raw;
  // A start without options; once it has finished, a pause and a next request on the
  // same keep-alive connection (nothing of the bodiless POST is left to be misread).
  raw = raw_exchange(s.port, "POST /api/backfill HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n", 3);
  EXPECT_EQ(raw.rfind("HTTP/1.1 202", 0), 0u) << raw;
  EXPECT_EQ(raw_body(raw)["model"], "new") << raw;
  auto c = s.client();
  wait_backfill(c);
  RawConnection conn(s.port);
  raw = conn.exchange("POST /api/backfill/pause HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n", 3);
  EXPECT_EQ(raw.rfind("HTTP/1.1 409", 0), 0u) << raw;
  EXPECT_NE(raw_body(raw).value("error", "").find("no backfill is running (state: finished)"), std::string::npos) << raw;
  raw = conn.exchange("GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n", 3);
  EXPECT_EQ(raw.rfind("HTTP/1.1 200", 0), 0u) << raw;
  EXPECT_EQ(raw_body(raw)["status"], "ok") << raw;
  // The path's parameter reaches the handler; a route that needs a body says which.
  raw = raw_exchange(s.port, "POST /api/models/nope/retire HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n", 3);
  EXPECT_EQ(raw.rfind("HTTP/1.1 404", 0), 0u) << raw;
  EXPECT_NE(raw_body(raw).value("error", "").find("unknown model 'nope'"), std::string::npos) << raw;
  raw = raw_exchange(s.port, "POST /api/search HTTP/1.1\r\nHost: x\r\n\r\n", 3);
  EXPECT_EQ(raw.rfind("HTTP/1.1 415", 0), 0u) << raw;
  EXPECT_NE(raw_body(raw).value("error", "").find("expected a JSON body (Content-Type: application/json)"),
            std::string::npos) << raw;
  // The token is still checked first.
  raw = raw_exchange(s.port, "POST /api/backfill HTTP/1.1\r\nHost: x\r\n\r\n", 3);
  EXPECT_EQ(raw.rfind("HTTP/1.1 401", 0), 0u) << raw;

  // The same with curl itself, the command docs/API.md shows, where curl is installed.
  if (std::system("command -v curl > /dev/null 2>&1") != 0) GTEST_SKIP() << "no curl";
  const std::string cmd = "curl -s --max-time 4 -w ' %{http_code}' -H 'Authorization: Bearer " + kToken +
                          "' -X POST http://127.0.0.1:" + std::to_string(s.port) + "/api/backfill/pause";
  std::unique_ptr<FILE, int (*)(FILE*)> p(::popen(cmd.c_str(), "r"), ::pclose);
  ASSERT_TRUE(p);
  std::string out;
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof buf, p.get())) out.append(buf, n);
  EXPECT_NE(out.find("no backfill is running"), std::string::npos) << out;
  EXPECT_EQ(out.substr(out.size() - 4), " 409") << out;
}

TEST_F(ServeRequests, UnauthenticatedAnswersNameTheGalleryNotTheServersFileSystem) {
  ServiceOptions o = options();
  o.report_dir = dir + "/elsewhere/eval_out";  // absent: its 404 names it
  TestServer s(*g, o);
  auto c = s.client();
  const json st = body_json(c.Get("/api/status"));
  // A database gallery is named by its database (the URL's path), never by its URL.
  const std::string where = gallery_at(dir + "/g");
  EXPECT_EQ(st["gallery"]["name"], on_postgres() ? where.substr(where.rfind('/') + 1) : "g");
  EXPECT_FALSE(st["gallery"].contains("dir")) << st.dump();
  auto no_path = [&](const std::string& path, int status) {
    const auto r = c.Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, status) << path << ": " << r->body;
    EXPECT_EQ(r->body.find(dir), std::string::npos) << path << " shows the server's path: " << r->body;
    if (on_postgres())
      EXPECT_EQ(r->body.find(url_password(where)), std::string::npos) << path << " shows the password: " << r->body;
  };
  for (const char* p : {"/api/status", "/api/health", "/api/items", "/api/backfill", "/api/metrics"}) no_path(p, 200);
  no_path("/api/report", 404);
  no_path("/api/curve", 404);
  no_path("/api/items/1/image?size=8", 200);
  const auto js = c.Get("/app.js");  // the page shows the name
  EXPECT_NE(js->body.find("st.gallery.name"), std::string::npos);
  EXPECT_EQ(js->body.find("gallery.dir"), std::string::npos);
  if (on_postgres()) return;  // no directory beside a database gallery, so nothing to show under its name
  // A report and a curve beside the gallery: named by the gallery.
  std::filesystem::create_directories(dir + "/g/curve");
  write_text_atomic(dir + "/g/curve/curve.json", R"({"title": "t", "curves": []})");
  no_path("/api/curve", 200);
  EXPECT_EQ(body_json(c.Get("/api/curve"))["source"], "g/curve/curve.json");
  // An item without an image source: the reader's error names its key, here a path in
  // the gallery; the answer shows it under the gallery's name.
  const std::vector<float> v(16, 0.5f);
  g->import_vectors("old", {{dir + "/g/imported.png", "x", -1, 0}}, 16, v.data(), false);
  const json page = body_json(c.Get("/api/items?offset=24&limit=1"));
  ASSERT_EQ(page["items"].size(), 1u) << page.dump();
  const auto img = c.Get("/api/items/" + std::to_string(page["items"][0]["id"].get<int64_t>()) + "/image");
  EXPECT_EQ(img->status, 404) << img->body;
  EXPECT_EQ(img->body.find(dir), std::string::npos) << img->body;
  EXPECT_NE(img->body.find("'g/imported.png'"), std::string::npos) << img->body;
}

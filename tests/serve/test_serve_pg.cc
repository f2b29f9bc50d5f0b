// `dualtune serve` on a PostgreSQL gallery, on a throwaway cluster of this test's own
// (tests/scripts/pg_cluster.sh, started once for the suite), which the tests may stop
// and start again:
//   - many readers: a vector committed through one connection is found by another
//     server's search by the commit's announcement (LISTEN/NOTIFY), long before its
//     fallback poll would ask (refresh_ms is set far beyond the test's timeout);
//   - an outage: with the server stopped the search and status routes answer 503 with
//     the server's reason (the URL shown by its database name, no password), and once it is back the same searches answer 200 and the same hits.
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>

#include "dualtune/gallery/pg.h"
#include "serve_fixtures.h"
#include "shard_fixtures.h"

namespace dualtune::serve::testing {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

int cluster(const std::string& verb, const std::string& state) {
  const std::string cmd = std::string("bash '") + DUALTUNE_SOURCE_DIR + "/tests/scripts/pg_cluster.sh' " + verb + " '" +
                          state + "' >/dev/null";
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

class ServePg : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    state_ = gallery::fixtures::temp_dir("serve_pg_state") + "/cluster";
    ASSERT_EQ(cluster("start", state_), 0) << "pg_cluster.sh start failed (PostgreSQL installed? scripts/install_deps.sh)";
    std::getline(std::ifstream(state_ + "/url"), admin_);
  }
  static void TearDownTestSuite() {
    cluster("stop", state_);
    std::filesystem::remove_all(std::filesystem::path(state_).parent_path());
  }
  void SetUp() override {
    ASSERT_FALSE(admin_.empty());
    static int counter = 0;
    const std::string db = "serve_pg_" + std::to_string(counter++);
    gallery::pg::Conn(admin_).exec("CREATE DATABASE " + db);
    url = admin_.substr(0, admin_.find('/', admin_.find("://") + 3)) + "/" + db;
  }
  static std::string state_, admin_;
  std::string url;
};
std::string ServePg::state_, ServePg::admin_;

json post(httplib::Client& c, const json& body, int* status = nullptr) {
  auto r = c.Post("/api/search", body.dump(), "application/json");
  if (!r) return nullptr;
  if (status) *status = r->status;
  return json::parse(r->body);
}

TEST_F(ServePg, AVectorCommittedThroughOneConnectionIsFoundByAnotherServerByItsAnnouncement) {
  auto writer = imported_transition(url, 60, 5);
  // Two servers on the store, each with its own connections; the fallback poll would
  // ask only after 10 minutes, so whatever they find sooner came by announcement.
  auto g1 = gallery::Gallery::open(url), g2 = gallery::Gallery::open(url);
  ServiceOptions o;
  o.refresh_ms = 600000;
  TestServer s1(*g1, o), s2(*g2, o);
  auto c1 = s1.client(), c2 = s2.client();
  std::vector<float> v(16, 0.f);
  v[3] = 1.f;  // a direction none of the 60 items has
  const json q{{"model", "old"}, {"k", 1}, {"vector", v}};
  ASSERT_NE(post(c1, q)["results"][0][0]["key"], "fresh");  // both have built their caches
  ASSERT_NE(post(c2, q)["results"][0][0]["key"], "fresh");

  const auto t0 = Clock::now();
  std::vector<float> fresh_vec(16, 0.f);
  fresh_vec[3] = 1.f;
  EXPECT_EQ(writer->import_vectors("old", {{"fresh", "", -1, 0}}, 16, fresh_vec.data(), false).added, 1);
  for (auto* c : {&c1, &c2}) {
    json top;
    while (Clock::now() - t0 < std::chrono::seconds(20)) {
      top = post(*c, q)["results"][0][0];
      if (top["key"] == "fresh") break;
    }
    EXPECT_EQ(top["key"], "fresh") << "not found within 20 s (its announcement did not arrive)";
    EXPECT_NEAR(top["score"].get<double>(), 1.0, 1e-6);
  }
  // Loosely: announcements on loopback take milliseconds; 5 s would mean polling.
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 5.0);

  // The mechanism, on Gallery objects: a listener runs and counts the announcement.
  gallery::OpenOptions ro;
  ro.read_only = true;
  ro.refresh_ms = 600000;
  auto r = gallery::Gallery::open(url, ro);
  EXPECT_TRUE(r->listening());
  const int64_t before = r->announcements();
  fresh_vec[4] = 1.f;
  writer->import_vectors("old", {{"fresh2", "", -1, 0}}, 16, fresh_vec.data(), false);
  while (r->announcements() == before && Clock::now() - t0 < std::chrono::seconds(20)) std::this_thread::yield();
  EXPECT_GT(r->announcements(), before);
  // SQLite announces nothing: its readers ask at every search (a local read).
  const std::string dir = gallery::fixtures::temp_dir("serve_pg_sqlite");
  std::filesystem::remove_all(dir);
  imported_transition(dir, 20, 4);
  EXPECT_FALSE(gallery::Gallery::open(dir, ro)->listening());
  std::filesystem::remove_all(dir);
}

TEST_F(ServePg, AnOutageAnswers503AndTheServiceRecoversWhenTheServerIsBack) {
  auto g = imported_transition(url, 60, 5);
  TestServer s(*g, ServiceOptions{});
  auto c = s.client();
  const auto qv = class_vectors(2, 24, 5, 0.5f, 2);
  const json q{{"model", "new"}, {"k", 5}, {"vector", std::vector<float>(qv.begin(), qv.begin() + 24)}};
  int status = 0;
  const json before = post(c, q, &status);
  ASSERT_EQ(status, 200) << before.dump();

  ASSERT_EQ(cluster("pause", state_), 0);
  const std::string password = admin_.substr(admin_.find(':', 14) + 1, admin_.find('@') - admin_.find(':', 14) - 1);
  for (const char* path : {"/api/search", "/api/status"}) {
    auto r = std::string(path) == "/api/search" ? c.Post(path, q.dump(), "application/json") : c.Get(path);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 503) << path << ": " << r->body;
    const std::string msg = json::parse(r->body)["error"].get<std::string>();
    EXPECT_EQ(msg.rfind("the gallery's database is unreachable: ", 0), 0u) << msg;
    EXPECT_NE(msg.find("the database server is unreachable"), std::string::npos) << msg;
    EXPECT_NE(msg.find("Connection refused"), std::string::npos) << msg;
    EXPECT_EQ(msg.find(password), std::string::npos) << "the password is shown: " << msg;
  }
  ASSERT_EQ(cluster("resume", state_), 0);
  const json after = post(c, q, &status);
  EXPECT_EQ(status, 200) << after.dump();
  EXPECT_EQ(after["results"], before["results"]);
  auto r = c.Get("/api/status");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;

  // A restarted service builds its caches from the server: the same answer.
  s.stop();
  auto g2 = gallery::Gallery::open(url);
  TestServer s2(*g2, ServiceOptions{});
  auto c2 = s2.client();
  EXPECT_EQ(post(c2, q, &status)["results"], before["results"]);
}

}  // namespace
}  // namespace dualtune::serve::testing

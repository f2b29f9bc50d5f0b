// Sharded search (shard_proxy.h): shard processes that each hold the items whose id mod n
// is theirs, and a proxy that merges their top-k lists, answer exactly what one unsharded
// server answers, on a gallery whose items are scored by two versions (a transition with
// calibrated scores). Each shard's servers are real Services on their own connections.
#include <set>

#include "serve_fixtures.h"
#include "shard_fixtures.h"

namespace dualtune::serve::testing {
namespace {

using json = nlohmann::json;

json post(httplib::Client& c, const json& body, int expect = 200) {
  auto r = c.Post("/api/search", body.dump(), "application/json");
  EXPECT_TRUE(r) << httplib::to_string(r.error());
  if (!r) return nullptr;
  EXPECT_EQ(r->status, expect) << r->body;
  return json::parse(r->body);
}

class ShardedSearch : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = gallery::fixtures::temp_dir("shards");
    std::filesystem::remove_all(dir);
    g = imported_transition(gallery_at(dir), kItems);
  }
  void TearDown() override {
    g.reset();
    std::filesystem::remove_all(dir);
  }
  /// A server of shard i of n (its own Gallery: its own connections and caches).
  std::unique_ptr<TestServer> shard_server(int64_t i, int64_t n) {
    shard_galleries.push_back(gallery::Gallery::open(gallery_at(dir)));
    ServiceOptions o;
    o.shard = {i, n};
    return std::make_unique<TestServer>(*shard_galleries.back(), o);
  }
  static constexpr int64_t kItems = 300;
  std::string dir;
  std::unique_ptr<gallery::Gallery> g;
  std::vector<std::unique_ptr<gallery::Gallery>> shard_galleries;
};

TEST_F(ShardedSearch, ProxyOverShardsAnswersExactlyTheUnshardedTopK) {
  TestServer whole(*g, ServiceOptions{});
  std::vector<std::unique_ptr<TestServer>> shards;
  ProxyOptions po;
  for (int64_t i = 2; i >= 0; --i) {  // listed out of order: the proxy orders them by what they say
    shards.push_back(shard_server(i, 3));
    po.shards.push_back("http://127.0.0.1:" + std::to_string(shards.back()->port));
  }
  TestProxy proxy(po);
  auto direct = whole.client();
  auto merged = proxy.client();

  // Queries of the rolling-out model: new vectors of a few classes (fresh draws).
  const auto q_new = class_vectors(6, 24, 20, 0.5f, 2);
  const auto q_old = class_vectors(6, 16, 20, 0.8f, 1);
  std::vector<json> vectors_new, vectors_old;
  for (int64_t i = 0; i < 6; ++i) {
    vectors_new.emplace_back(std::vector<float>(q_new.begin() + i * 24, q_new.begin() + (i + 1) * 24));
    vectors_old.emplace_back(std::vector<float>(q_old.begin() + i * 16, q_old.begin() + (i + 1) * 16));
  }
  std::set<std::string> embeddings_seen;
  for (const json& body : {json{{"model", "new"}, {"k", 25}, {"vectors", vectors_new}},
                           json{{"model", "new"}, {"k", 7}, {"merge", "raw"}, {"vectors", vectors_new}},
                           json{{"model", "old"}, {"k", 10}, {"vectors", vectors_old}},
                           json{{"model", "new"}, {"k", 400}, {"vector", vectors_new[0]}}}) {
    const json a = post(direct, body), b = post(merged, body);
    ASSERT_TRUE(a.is_object() && b.is_object());
    EXPECT_EQ(b["merge"], a["merge"]);
    EXPECT_EQ(b["shards"], 3);
    // Ids, keys, labels, scores, merge keys, versions and ranks, query by query.
    EXPECT_EQ(b["results"], a["results"]) << body.dump().substr(0, 60);
    for (const auto& hits : a["results"])
      for (const auto& h : hits) embeddings_seen.insert(h["embedding"].get<std::string>());
  }
  // The default merge of "new" is the calibrated one, over both versions; k = 400 returns
  // all 300 items, each once.
  EXPECT_EQ(post(direct, {{"model", "new"}, {"vector", vectors_new[0]}})["merge"], "calibrated");
  EXPECT_EQ(embeddings_seen, (std::set<std::string>{"new", "old"}));
  EXPECT_EQ(post(merged, {{"model", "new"}, {"k", 400}, {"vector", vectors_new[0]}})["results"][0].size(), 300u);

  // Each shard holds only its own items: id mod 3 == its index.
  for (size_t s = 0; s < shards.size(); ++s) {
    const int64_t index = 2 - static_cast<int64_t>(s);
    auto c = shards[s]->client();
    const json j = post(c, {{"model", "new"}, {"k", 400}, {"vector", vectors_new[0]}});
    EXPECT_EQ(body_json(c.Get("/api/health"))["shard"], std::to_string(index) + "/3");
    int64_t n = 0;
    for (const auto& h : j["results"][0]) {
      EXPECT_EQ(h["id"].get<int64_t>() % 3, index);
      ++n;
    }
    EXPECT_EQ(n, 100);  // ids 1..300: 100 per residue
  }
}

TEST_F(ShardedSearch, ProxyRefusesWhatItCannotAnswerExactly) {
  auto s0 = shard_server(0, 2), s1 = shard_server(1, 2);
  const std::string u0 = "http://127.0.0.1:" + std::to_string(s0->port), u1 = "http://127.0.0.1:" + std::to_string(s1->port);
  using gallery::fixtures::error_of;
  EXPECT_NE(error_of([&] { ShardProxy p({{u0, u0}}); }).find("both serve shard 0/2"), std::string::npos);
  EXPECT_NE(error_of([&] { ShardProxy p({{u0}}); }).find("serves shard 0/2, expected one of 1 shards"), std::string::npos);
  EXPECT_NE(error_of([&] { ShardProxy p({{u0, "http://127.0.0.1:1"}}); }).find("does not answer GET /api/health"),
            std::string::npos);

  TestProxy proxy({{u0, u1}});
  auto c = proxy.client();
  const std::vector<float> q(24, 0.5f);
  // Merges that depend on every shard's items.
  for (const char* m : {"rank", "aligned"}) {
    const json e = post(c, {{"model", "new"}, {"merge", m}, {"vector", q}}, 400);
    EXPECT_NE(e["error"].get<std::string>().find("is not exact over shards"), std::string::npos) << e.dump();
  }
  // A shard's refusal is passed through.
  const json bad = post(c, {{"model", "new"}, {"vector", std::vector<float>(5, 1.f)}}, 400);
  EXPECT_NE(bad["error"].get<std::string>().find("has dimension 5"), std::string::npos) << bad.dump();
  // A shard that is gone: 503 naming it, never a top-k without its items.
  s1->stop();
  const json gone = post(c, {{"model", "new"}, {"vector", q}}, 503);
  EXPECT_NE(gone["error"].get<std::string>().find("shard 1/2 (" + u1 + ") is unreachable"), std::string::npos) << gone.dump();
  auto r = c.Get("/api/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
}

}  // namespace
}  // namespace dualtune::serve::testing

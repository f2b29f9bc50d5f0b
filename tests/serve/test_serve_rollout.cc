// The gated cutover through the API: the gate and the lifecycle history in GET
// /api/status, POST /api/rollback (write route) stopping a running backfill and keeping
// its embeddings, a rollout of the same model resuming the backfill, and the refusals.
#include "dualtune/gallery/store.h"
#include "serve_fixtures.h"

using namespace dualtune;
using namespace dualtune::serve;
using namespace dualtune::serve::testing;
using nlohmann::json;
using std::chrono::milliseconds;

namespace {

json post(httplib::Client& c, const std::string& path, const std::string& token, int* status) {
  const auto r = c.Post(path, bearer(token), "{}", "application/json");
  *status = r ? r->status : -1;
  return body_json(r);
}

int64_t stored_vectors(const std::string& dir, const std::string& model) {
  auto s = gallery::Store::open(gallery_at(dir), true);
  return s->count_vectors(s->model(model).version_id);
}

}  // namespace

TEST(ServeRollout, RollbackStopsTheBackfillKeepsItsEmbeddingsAndShowsInTheHistory) {
  const auto root = gallery::fixtures::temp_dir("serve_rollout_images");
  write_images(root);
  const auto dir = gallery::fixtures::temp_dir("serve_rollout") + "/g";
  auto g = transition_gallery(dir, root);  // "new" rolled out by the library: ungated
  ServiceOptions o;
  o.token = kToken;
  o.threads = 2;
  TestServer s(*g, o, pixel_factory(milliseconds(30)));
  auto c = s.client();

  json st = body_json(c.Get("/api/status"));
  ASSERT_EQ(st["history"].size(), 1u);
  EXPECT_EQ(st["history"][0]["event"], "rollout");
  EXPECT_EQ(st["history"][0]["model"], "new");
  EXPECT_EQ(st["history"][0]["deployed"], "old");
  EXPECT_EQ(st["gate"]["model"], "new");
  EXPECT_EQ(st["gate"]["gate"]["decision"], "ungated");
  EXPECT_TRUE(st["gate"]["gate"]["new_old"]["map"].is_null());  // nothing measured

  int status = 0;
  post(c, "/api/rollback", "wrong-token", &status);
  EXPECT_EQ(status, 401);
  EXPECT_EQ(body_json(c.Get("/api/status"))["query_model"], "new");  // the refused call changed nothing

  const auto started = c.Post("/api/backfill", bearer(kToken), json{{"batch_size", 4}}.dump(), "application/json");
  ASSERT_EQ(started->status, 202);
  for (int i = 0; i < 2000 && stored_vectors(dir, "new") < 4; ++i) std::this_thread::sleep_for(milliseconds(5));
  json r = post(c, "/api/rollback", kToken, &status);
  ASSERT_EQ(status, 200) << r.dump();
  EXPECT_EQ(r["rolled_back"], "new");
  EXPECT_EQ(r["deployed"], "old");
  const json bf = wait_backfill(c);
  EXPECT_TRUE(bf["state"] == "rolled_back" || bf["state"] == "paused") << bf.dump();
  const int64_t kept = stored_vectors(dir, "new");
  EXPECT_GE(kept, 4);
  EXPECT_LT(kept, 24);  // stopped before the end (24 items at 30 ms a batch of 4)

  st = body_json(c.Get("/api/status"));
  EXPECT_EQ(st["query_model"], "old");
  EXPECT_EQ(st["models"][1]["role"], "rolled_back");
  EXPECT_EQ(st["models"][1]["embeddings"], kept);  // kept for a later rollout
  EXPECT_TRUE(st["gate"].is_null());  // the deployed model was not rolled out here
  ASSERT_EQ(st["history"].size(), 2u);
  EXPECT_EQ(st["history"][1]["event"], "rollback");
  EXPECT_EQ(st["history"][1]["note"], "kept " + std::to_string(kept) + " of 24 embeddings for a later rollout");
  const auto q = c.Post("/api/search", json{{"model", "new"}, {"vector", std::vector<float>(24, 1.f)}}.dump(),
                        "application/json");
  EXPECT_EQ(q->status, 409);
  EXPECT_NE(body_json(q)["error"].get<std::string>().find("'new' was rolled back"), std::string::npos);
  r = post(c, "/api/rollback", kToken, &status);
  EXPECT_EQ(status, 409);
  EXPECT_NE(r["error"].get<std::string>().find("'new' was already rolled back"), std::string::npos);

  // The same model rolled out again: the backfill resumes with what was kept.
  g->rollout({"new", 24, "pixels-new", PixelEmbedder(24).fingerprint()});
  ASSERT_EQ(c.Post("/api/backfill", bearer(kToken), "{}", "application/json")->status, 202);
  const json done = wait_backfill(c);
  EXPECT_EQ(done["state"], "finished");
  EXPECT_EQ(done["last_run"]["embedded"], 24 - kept);
  st = body_json(c.Get("/api/status"));
  ASSERT_EQ(st["history"].size(), 3u);
  EXPECT_EQ(st["history"][2]["note"], "resumed: " + std::to_string(kept) + " of 24 items already embedded");
}

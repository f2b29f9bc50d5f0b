// `dualtune gallery` through the CLI binary with two tiny trained models and a small
// ImageFolder gallery: the whole transition with a corrupt and a missing image, kill -9
// inside and between transactions of add / import / backfill (then resume, equal to an
// uninterrupted run), searches from another process while a backfill writes, --nproc 2
// equal to one process, and bad input.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "dualtune/features/feature_set.h"
#include "dualtune/gallery/gallery.h"
#include "dualtune/gallery/sqlite_store.h"
#include "dualtune/gallery/store.h"
#include "dualtune/util/atomic_file.h"
#include "../core/gallery_fixtures.h"
#include "../store/store_test_env.h"
#include "tiny_data.h"

using namespace dualtune;
using dualtune::gallery::fixtures::vectors_by_key;
namespace fs = std::filesystem;

namespace {

class GalleryCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir = testdata::temp_dir("gallery_cli");
    testdata::write_tiny_idx(dir + "/data", 240, 40, 4);
    for (const auto& [name, dim] : {std::pair<std::string, int>{"old", 16}, {"new", 24}}) {
      std::ofstream(dir + "/" + name + ".yml") << "data:\n  root: " << dir << "/data\n  workers: 0\n"
                                               << "model:\n  embedding_dim: " << dim << "\n"
                                               << "optim:\n  epochs: 1\n  batch_size: 32\n"
                                               << "seed: " << dim << "\nthreads: 1\nlog_every: 100\n";
      int st = 0;
      const auto out = testdata::run_command(bin() + " train -c " + dir + "/" + name + ".yml output_dir=" + dir + "/runs/" + name, &st);
      ASSERT_EQ(st, 0) << out;
    }
    // 4 classes × 12 images of 28×28 gray: a bright square at a class-specific place.
    for (int c = 0; c < 4; ++c) {
      fs::create_directories(dir + "/imgs/g/class" + std::to_string(c));
      for (int i = 0; i < 12; ++i) {
        cv::Mat m(28, 28, CV_8UC1, cv::Scalar(10 + 3 * i));
        m(cv::Rect(2 + 6 * c, 4 + i % 5, 8, 8)).setTo(220);
        cv::imwrite(image(c, i), m);
      }
    }
  }
  static std::string bin() { return DUALTUNE_BINARY; }
  static std::string image(int c, int i) {
    return dir + "/imgs/g/class" + std::to_string(c) + "/" + std::to_string(10 + i) + ".png";
  }
  static std::string run(const std::string& args, int* status, const std::string& env = "") {
    return testdata::run_command(env + " " + bin() + " gallery " + args, status);
  }
  static std::string ok(const std::string& args, const std::string& env = "") {
    int st = 0;
    const auto out = run(args, &st, env);
    EXPECT_EQ(st, 0) << args << "\n" << out;
    return out;
  }
  /// A gallery with every image of imgs/g added by the old model and the new model rolled
  /// out: the directory dir/name, or the database URL `where`.
  static std::string rolled_out(const std::string& name) {
    fs::remove_all(dir + "/" + name);
    return rolled_out_at(dir + "/" + name);
  }
  static std::string rolled_out_at(const std::string& g) {
    ok("create " + g + " --model old --model-path " + dir + "/runs/old");
    ok("add " + g + " --format image_folder --root " + dir + "/imgs --split g --threads 1 --workers 0 --batch 8");
    ok("rollout " + g + " --model new --model-path " + dir + "/runs/new --force");  // the gate: below
    return g;
  }
  /// What must hold after any crash: a sound database, every item with the deployed
  /// model's vector, no vector of the wrong size, no temporary file left by a writer.
  static void expect_consistent(const std::string& g) {
    auto s = gallery::SqliteStore::open(g, true);
    EXPECT_EQ(s->integrity_check(), "ok");
    const auto old = s->model("old");
    EXPECT_EQ(s->count_vectors(old.version_id), s->item_count());
    auto st = s->db().prepare("SELECT count(*) FROM embeddings e JOIN versions v ON v.id = e.version_id "
                              "WHERE length(e.vec) != 4 * v.dim");
    st.step();
    EXPECT_EQ(st.column_int(0), 0);
  }
  static int killed_by_fault(const std::string& args, const std::string& fault) {
    int st = 0;
    const auto out = run(args, &st, "DUALTUNE_FAULT=" + fault);
    EXPECT_NE(st, 0) << "expected the fault " << fault << " to kill: " << out;
    return st;
  }
  static std::string dir;
};
std::string GalleryCli::dir;

}  // namespace

TEST_F(GalleryCli, TransitionWithACorruptAndAMissingImage) {
  const std::string g = dir + "/e2e";
  fs::remove_all(g);
  const std::string corrupt = image(1, 11);
  const std::string good = read_file(corrupt);
  write_text_atomic(corrupt, "not a png");
  ok("create " + g + " --model old --model-path " + dir + "/runs/old");
  auto out = ok("add " + g + " --format image_folder --root " + dir + "/imgs --split g --threads 1 --batch 8");
  EXPECT_NE(out.find("skipped " + corrupt), std::string::npos) << out;
  EXPECT_NE(out.find("added 47 items"), std::string::npos) << out;
  write_text_atomic(corrupt, good);
  // A missing image at backfill time: reported and skipped, the rest goes on.
  const std::string gone = image(2, 3);
  const std::string keep = read_file(gone);
  fs::remove(gone);
  // Without a probe the rollout is refused, saying how to give one, and changes nothing.
  int refused_status = 0;
  const std::string refused = run("rollout " + g + " --model new --model-path " + dir + "/runs/new", &refused_status);
  EXPECT_NE(refused_status, 0);
  EXPECT_NE(refused.find("no compatibility probe given for 'new'"), std::string::npos) << refused;
  EXPECT_EQ(ok("status " + g).find("rolling_out"), std::string::npos);
  ok("rollout " + g + " --model new --model-path " + dir + "/runs/new --force");
  EXPECT_NE(ok("status " + g).find("gate forced"), std::string::npos);
  std::ofstream(dir + "/queries.txt") << image(0, 1) << "\n" << image(3, 2) << "\n";
  out = ok("search " + g + " --model new --list " + dir + "/queries.txt -k 3 --threads 1");
  EXPECT_NE(out.find("2 queries of new, k = 3, merge raw"), std::string::npos) << out;  // the default without calibrations
  out = ok("backfill " + g + " --batch 8 --threads 1 --order random");
  EXPECT_NE(out.find("skipped " + gone + ": missing image"), std::string::npos) << out;
  EXPECT_NE(out.find("46 embedded, 1 skipped"), std::string::npos) << out;
  write_text_atomic(gone, keep);
  out = ok("status " + g);
  EXPECT_NE(out.find("47 items"), std::string::npos) << out;
  EXPECT_NE(out.find("97.9%"), std::string::npos) << out;  // 46 / 47
  EXPECT_NE(out.find("order random, 46 of 47 planned items done, 1 failed"), std::string::npos) << out;
  int st = 0;
  out = run("retire " + g + " --model old", &st);
  EXPECT_NE(st, 0);
  EXPECT_NE(out.find("1 of 47 items have no embedding of 'new' yet"), std::string::npos) << out;
  out = ok("backfill " + g + " --retry-failed --threads 1");
  EXPECT_NE(out.find("1 embedded, 0 skipped"), std::string::npos) << out;
  out = ok("curve " + g + " --fractions 0,0.5,1 --threads 1");
  EXPECT_NE(out.find("| plan | raw |"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(g + "/curve/curve.json"));
  ok("retire " + g + " --model old");
  out = ok("status " + g + " --json --check");
  const auto j = nlohmann::json::parse(out.substr(0, out.rfind('}') + 1));
  EXPECT_EQ(j["models"][0]["role"], "retired");
  EXPECT_EQ(j["models"][1]["role"], "deployed");
  EXPECT_EQ(j["models"][1]["embeddings"], 47);
}

TEST_F(GalleryCli, BadInputGivesClearErrors) {
  const std::string g = rolled_out("bad");
  int st = 0;
  // Query features of the wrong dimension.
  testdata::run_command(bin() + " extract --model " + dir + "/runs/old --format image_folder --root " + dir +
                            "/imgs --split g --out " + dir + "/feats_old --threads 1",
                        &st);
  ASSERT_EQ(st, 0);
  auto out = run("search " + g + " --model new --features " + dir + "/feats_old", &st);
  EXPECT_NE(st, 0);
  EXPECT_NE(out.find("queries of model 'new' must have dimension 24, found 16"), std::string::npos) << out;
  // The same keys again: duplicate.
  out = run("import " + g + " --model old --features " + dir + "/feats_old", &st);
  EXPECT_NE(st, 0);
  EXPECT_NE(out.find("48 keys are already in the gallery with a vector of 'old'"), std::string::npos) << out;
  // A model retrained in place: its fingerprint no longer matches the recorded one.
  fs::copy(dir + "/runs/new", dir + "/runs/new_copy", fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  const std::string g2 = dir + "/bad_fp";
  fs::remove_all(g2);
  ok("create " + g2 + " --model old --model-path " + dir + "/runs/old");
  ok("add " + g2 + " --format image_folder --root " + dir + "/imgs --split g --threads 1");
  ok("rollout " + g2 + " --model new --model-path " + dir + "/runs/new_copy --force");
  auto meta = nlohmann::json::parse(read_file(dir + "/runs/new_copy/meta.json"));
  meta["config_hash"] = "0000000000000000";
  write_text_atomic(dir + "/runs/new_copy/meta.json", meta.dump());
  out = run("backfill " + g2 + " --threads 1", &st);
  EXPECT_NE(st, 0);
  EXPECT_NE(out.find("was registered with fingerprint config:"), std::string::npos) << out;
  EXPECT_NE(out.find("the model given has config:0000000000000000"), std::string::npos) << out;
  // Not a gallery / a foreign or corrupt database file.
  out = run("status " + dir + "/nowhere", &st);
  EXPECT_NE(st, 0);
  EXPECT_NE(out.find("no gallery at"), std::string::npos) << out;
  fs::create_directories(dir + "/garbage");
  std::ofstream(dir + "/garbage/gallery.db") << std::string(8192, '\x7f');
  out = run("status " + dir + "/garbage", &st);
  EXPECT_NE(st, 0);
  EXPECT_NE(out.find("is not a dualtune gallery database"), std::string::npos) << out;
  // A stale index cache: rebuilt with a notice, the search succeeds.
  ok("search " + g + " --model old --features " + dir + "/feats_old -k 2 --threads 1");
  for (const auto& e : fs::directory_iterator(g + "/index")) fs::resize_file(e.path(), 64);
  out = ok("search " + g + " --model old --features " + dir + "/feats_old -k 2 --threads 1");
  EXPECT_NE(out.find("is stale or corrupt"), std::string::npos) << out;
}

TEST_F(GalleryCli, KillNineInsideAndBetweenTransactionsLosesNothing) {
  int st = 0;
  testdata::run_command(bin() + " extract --model " + dir + "/runs/old --format image_folder --root " + dir +
                            "/imgs --split g --out " + dir + "/feats_kill --threads 1",
                        &st);
  ASSERT_EQ(st, 0);
  const auto feats = features::FeatureSet::load(dir + "/feats_kill");
  // import, 4 transactions of 16 rows (48 = 16 + 16 + 16): killed inside the second.
  const std::string gi = dir + "/kill_import";
  fs::remove_all(gi);
  ok("create " + gi + " --model old --model-path " + dir + "/runs/old");
  const std::string imp = "import " + gi + " --model old --features " + dir + "/feats_kill --chunk 16";
  killed_by_fault(imp, "before-commit:2");
  expect_consistent(gi);
  EXPECT_EQ(gallery::Store::open(gi, true)->item_count(), 16);
  ok(imp + " --skip-existing");
  auto v = vectors_by_key(gi, "old");
  ASSERT_EQ(v.size(), 48u);
  for (int64_t i = 0; i < feats.n; ++i)
    EXPECT_EQ(v[feats.paths[i]], std::vector<float>(feats.features.begin() + i * 16, feats.features.begin() + (i + 1) * 16));

  // add, batches of 8: killed right after the third commit, then inside the next one.
  const std::string ga = dir + "/kill_add";
  fs::remove_all(ga);
  ok("create " + ga + " --model old --model-path " + dir + "/runs/old");
  const std::string add = "add " + ga + " --format image_folder --root " + dir + "/imgs --split g --threads 1 --batch 8";
  killed_by_fault(add, "after-commit:3");
  expect_consistent(ga);
  EXPECT_EQ(gallery::Store::open(ga, true)->item_count(), 24);
  killed_by_fault(add + " --skip-existing", "before-commit:1");
  expect_consistent(ga);
  EXPECT_EQ(gallery::Store::open(ga, true)->item_count(), 24);
  ok(add + " --skip-existing");
  expect_consistent(ga);
  EXPECT_EQ(gallery::Store::open(ga, true)->item_count(), 48);

  // backfill: killed inside a transaction, after one, and at a random instant; each time
  // resumed. The end result equals an uninterrupted backfill, bit for bit.
  const std::string ref = rolled_out("kill_ref"), gb = rolled_out("kill_backfill");
  ok("backfill " + ref + " --batch 4 --threads 1 --order random --seed 3");
  const std::string bf = "backfill " + gb + " --batch 4 --threads 1 --order random --seed 3";
  killed_by_fault(bf, "before-commit:2");
  expect_consistent(gb);
  EXPECT_EQ(gallery::Store::open(gb, true)->count_vectors(gallery::Store::open(gb, true)->model("new").version_id), 4);
  killed_by_fault(bf, "after-commit:3");
  expect_consistent(gb);
  EXPECT_EQ(gallery::Store::open(gb, true)->count_vectors(gallery::Store::open(gb, true)->model("new").version_id), 16);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // `exec`: the SIGKILL below must reach dualtune itself, not leave it running as an
    // orphan beside the next backfill.
    ::execl("/bin/sh", "sh", "-c", ("exec " + bin() + " gallery " + bf + " >/dev/null 2>&1").c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &st, 0);
  expect_consistent(gb);
  ok(bf);
  expect_consistent(gb);
  EXPECT_EQ(vectors_by_key(gb, "new"), vectors_by_key(ref, "new"));
  EXPECT_EQ(vectors_by_key(gb, "new").size(), 48u);
}

TEST_F(GalleryCli, SearchesFromAnotherProcessDuringABackfillAlwaysSeeEveryItem) {
  const std::string g = rolled_out("concurrent");
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string cmd = "exec " + bin() + " gallery backfill " + g + " --batch 1 --threads 1 --order random --quiet >/dev/null 2>&1";
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  auto gal = gallery::Gallery::open(g, {true, false, {}});
  const auto new_version = gal->model("new").version_id;
  std::vector<float> q(24, 0.f);
  for (int i = 0; i < 24; ++i) q[i] = float((i * 7) % 5) - 2.f;
  int searches = 0, mixed = 0, st = 0;
  bool exited = false;
  while (!exited) {
    exited = ::waitpid(pid, &st, WNOHANG) == pid;
    gallery::SearchOptions o;
    o.k = 60;
    o.merge = gallery::Merge::kRaw;
    const auto r = gal->search("new", 1, q.data(), 24, o);
    std::set<int64_t> ids;
    int from_new = 0;
    for (int j = 0; j < 60; ++j) {
      if (r.ids[j] >= 0) ids.insert(r.ids[j]);
      from_new += r.versions[j] == new_version;
    }
    ASSERT_EQ(ids.size(), 48u) << "search " << searches << " saw " << ids.size() << " of 48 items";
    mixed += from_new > 0 && from_new < 48;
    ++searches;
  }
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  EXPECT_GT(searches, 5);
  EXPECT_GT(mixed, 0) << "no search landed while the gallery was partly backfilled";
  EXPECT_EQ(vectors_by_key(g, "new").size(), 48u);
}

/// The command lines of the running processes (arguments joined by spaces) that contain `part`.
std::set<std::string> command_lines_with(const std::string& part) {
  std::set<std::string> found;
  std::error_code ec;
  for (fs::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
    const auto& e = *it;
    const std::string pid = e.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream f(e.path() / "cmdline", std::ios::binary);
    std::string line((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::replace(line.begin(), line.end(), '\0', ' ');
    if (line.find(part) != std::string::npos) found.insert(line);
  }
  return found;
}

// On a PostgreSQL gallery `--nproc 2` starts a claiming worker (store_claims.h); the
// result equals one process on a SQLite gallery, vector for vector. The worker's command
// line, which every user of the machine can read in /proc, carries the URL without its
// password (the worker gets it as PGPASSWORD); the test watches /proc while it runs.
TEST_F(GalleryCli, PostgreSQLNprocTwoEqualsOneProcessAndTheWorkersCommandLineHasNoPassword) {
  gallery::testenv::Database db;
  ASSERT_FALSE(db.url().empty());
  const std::string one = rolled_out("pg_nproc1"), two = rolled_out_at(db.url());
  ok("backfill " + one + " --batch 4 --threads 1 --order random --seed 1");
  const std::string password = gallery::testenv::url_password(db.url());
  ASSERT_FALSE(password.empty());
  std::atomic<bool> done{false};
  int status = -1;
  std::string out;
  std::thread run_it([&] {
    out = run("backfill '" + two + "' --batch 4 --threads 1 --order random --seed 1 --nproc 2", &status);
    done = true;
  });
  std::set<std::string> workers;  // the started ranks: they alone are given --gallery-uuid
  while (!done) {
    for (const auto& c : command_lines_with("--gallery-uuid")) workers.insert(c);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the worker lives for seconds
  }
  run_it.join();
  ASSERT_EQ(status, 0) << out;
  EXPECT_EQ(vectors_by_key(one, "new"), vectors_by_key(two, "new"));
  EXPECT_EQ(vectors_by_key(two, "new").size(), 48u);
  ASSERT_FALSE(workers.empty()) << "never saw the worker rank's process: " << out;
  for (const auto& c : workers) {
    EXPECT_EQ(c.find(password), std::string::npos) << "the password is on a worker's command line: " << c;
    EXPECT_NE(c.find(" gallery backfill " + gallery::pg::strip_password(db.url(), nullptr) + " "), std::string::npos) << c;
  }
  EXPECT_EQ(out.find(password), std::string::npos) << out;
}

TEST_F(GalleryCli, NprocTwoEqualsOneProcess) {
  const std::string one = rolled_out("nproc1"), two = rolled_out("nproc2");
  ok("backfill " + one + " --batch 4 --threads 1 --order random --seed 1");
  const auto out = ok("backfill " + two + " --batch 4 --threads 1 --order random --seed 1 --nproc 2");
  EXPECT_NE(out.find("48 embedded"), std::string::npos) << out;
  EXPECT_EQ(vectors_by_key(one, "new"), vectors_by_key(two, "new"));
}

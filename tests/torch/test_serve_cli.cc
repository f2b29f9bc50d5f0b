// `dualtune serve` as a user runs it: the real binary on a free loopback port over a
// small gallery of Fashion-MNIST test images embedded by two tiny trained models, with
// the models' compatibility report and backfill curve beside it. An uploaded image is
// embedded by the model and found; SIGTERM during a backfill exits cleanly at a batch
// boundary and a restarted server finishes it with exactly the vectors of an
// uninterrupted `gallery backfill`; and the page is driven in Debian's headless chromium
// (tests/browser/serve_page.mjs), which saves its screenshots under
// <build>/test_output/serve_page/.
#include <gtest/gtest.h>
#include <httplib.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <thread>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "dualtune/data/dataset.h"
#include "dualtune/gallery/store.h"
#include "dualtune/util/atomic_file.h"
#include "dualtune/util/install_paths.h"
#include "../core/gallery_fixtures.h"
#include "tiny_data.h"

using namespace dualtune;
using dualtune::gallery::fixtures::vectors_by_key;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::string kFmnist = kFashionMnistDir;
const std::string kToken = "serve-cli-token-0123456789";

/// A `dualtune serve` child process; its stdout and stderr go to files in dir.
class ServeProcess {
 public:
  ServeProcess(const std::string& args, const std::string& dir) : out_(dir + "/serve.out"), err_(dir + "/serve.err") {
    // The files are emptied here, before the fork: were the child to truncate them, this
    // process could first read the previous server's announcement and connect to its port.
    const int o = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int e = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const std::string command = std::string("exec ") + DUALTUNE_BINARY + " serve " + args;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(o, 1);
      ::dup2(e, 2);
      ::execl("/bin/sh", "sh", "-c", command.c_str(), nullptr);
      ::_exit(127);
    }
    ::close(o);
    ::close(e);
    // The chosen port is announced on stdout.
    const std::regex announced(R"(http://127\.0\.0\.1:(\d+)/)");
    for (int i = 0; i < 600 && port == 0; ++i) {
      std::smatch m;
      const std::string text = testdata::slurp(out_);
      if (std::regex_search(text, m, announced)) port = std::stoi(m[1].str());
      else if (::waitpid(pid_, &status_, WNOHANG) == pid_) break;
      else std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_GT(port, 0) << "serve did not announce its port\nstdout: " << testdata::slurp(out_) << "\nstderr: " << testdata::slurp(err_);
  }
  ~ServeProcess() {
    if (pid_ > 0 && !reaped_) stop(SIGKILL);
  }
  /// Sends sig and waits; returns the exit code (-1 when killed by a signal).
  int stop(int sig = SIGTERM) {
    if (reaped_) return exit_code_;
    ::kill(pid_, sig);
    ::waitpid(pid_, &status_, 0);
    reaped_ = true;
    exit_code_ = WIFEXITED(status_) ? WEXITSTATUS(status_) : -1;
    return exit_code_;
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60, 0);
    return c;
  }
  std::string out() const { return testdata::slurp(out_); }
  std::string err() const { return testdata::slurp(err_); }
  int port = 0;

 private:
  std::string out_, err_;
  pid_t pid_ = -1;
  int status_ = 0, exit_code_ = -1;
  bool reaped_ = false;
};

class ServeCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(fs::exists(kFmnist)) << "Fashion-MNIST not found in " << kFmnist << ": run scripts/install_deps.sh";
    dir = testdata::temp_dir("serve_cli");
    // Two tiny models: the deployed one on classes 0-4, a BCT-compatible new one on all.
    const std::string common = " data.workers=0 threads=1 log_every=1000 optim.epochs=1 augment.pad=0";
    run(bin() + " train -c " + DUALTUNE_SOURCE_DIR "/configs/fmnist/old_convnet_s.yml data.limit=1200 model.embedding_dim=32 output_dir=" +
        dir + "/runs/old" + common);
    run(bin() + " train -c " + DUALTUNE_SOURCE_DIR "/configs/fmnist/new_bct.yml data.limit=2000 model.backbone=convnet-s "
        "model.embedding_dim=48 old.path=" + dir + "/runs/old output_dir=" + dir + "/runs/new" + common);
    // The gallery: 240 test images embedded by the old model; the new model rolled out.
    const std::string g = dir + "/g";
    run(bin() + " gallery create " + g + " --model old --model-path " + dir + "/runs/old");
    run(bin() + " gallery add " + g + " --format idx --root " + kFmnist + " --split test --limit 240 --batch 64 --threads 1 --workers 0");
    // Beside it: the compatibility report of the two models on the same images (the new
    // model's rollout gate reads it; --force: models this tiny may fail it), and the
    // backfill curve measured on a fully backfilled copy.
    for (const std::string m : {"old", "new"})
      run(bin() + " extract --model " + dir + "/runs/" + m + " --format idx --root " + kFmnist + " --split test --limit 240 --out " +
          dir + "/features/" + m + " --workers 0");
    run(bin() + " eval --features old=" + dir + "/features/old --features new=" + dir + "/features/new --old old --out " + g + "/report");
    run(bin() + " gallery rollout " + g + " --model new --model-path " + dir + "/runs/new --probe-report " + g +
        "/report --force");
    fs::copy(g, dir + "/full", fs::copy_options::recursive);
    run(bin() + " gallery backfill " + dir + "/full --batch 16 --quiet --threads 1 --workers 0");
    run(bin() + " gallery curve " + dir + "/full --out " + g + "/curve --threads 1");
    write_text_atomic(dir + "/token", kToken + "\n");
  }
  static std::string bin() { return DUALTUNE_BINARY; }
  static std::string run(const std::string& cmd) {
    int st = 0;
    const auto out = testdata::run_command(cmd, &st);
    EXPECT_EQ(st, 0) << cmd << "\n" << out;
    return out;
  }
  /// A fresh copy of the prepared gallery (each test changes its own).
  static std::string copy_gallery(const std::string& name) {
    const std::string to = dir + "/" + name;
    fs::remove_all(to);
    fs::copy(dir + "/g", to, fs::copy_options::recursive);
    return to;
  }
  static std::string dir;
};
std::string ServeCli::dir;

json body(const httplib::Result& r) {
  EXPECT_TRUE(r) << "request failed: " << httplib::to_string(r.error());
  return r ? json::parse(r->body) : json();
}

/// The response's HTTP status, or -1 (a test failure naming the error) when the request
/// got no response: a null result must not be dereferenced.
int status_of(const httplib::Result& r) {
  EXPECT_TRUE(r) << "request failed: " << httplib::to_string(r.error());
  return r ? r->status : -1;
}

/// PNG bytes of Fashion-MNIST test image i (as the dataset decodes it).
std::string test_png(size_t i) {
  data::DatasetSpec spec;
  spec.format = "idx";
  spec.root = kFmnist;
  spec.split = "test";
  const auto img = data::open_dataset(spec)->image(i);
  cv::Mat m(img.h, img.w, CV_8UC1, const_cast<uint8_t*>(img.pixels.data()));
  std::vector<uint8_t> png;
  cv::imencode(".png", m, png);
  return std::string(png.begin(), png.end());
}

}  // namespace

TEST_F(ServeCli, UploadedImageIsEmbeddedByTheModelAndFound) {
  const std::string g = copy_gallery("upload");
  ServeProcess s(g + " --port 0 --token-file " + dir + "/token", dir);
  ASSERT_GT(s.port, 0);
  EXPECT_NE(s.out().find("write routes need the bearer token"), std::string::npos) << s.out();
  auto c = s.client();
  EXPECT_EQ(body(c.Get("/api/health"))["items"], 240);
  // The old model embeds the upload exactly as it embedded the gallery item: score 1.
  // (`--limit` takes a seeded subset: the item's key "<idx file>#<index>" names its image.)
  const json items = body(c.Get("/api/items?offset=17&limit=1"));
  const std::string item_key = items["items"][0]["key"];
  const size_t image_index = std::stoul(item_key.substr(item_key.rfind('#') + 1));
  const json old = body(c.Post("/api/search/image?model=old&k=3", test_png(image_index), "image/png"));
  ASSERT_EQ(old["results"][0].size(), 3u) << old.dump();
  EXPECT_EQ(old["results"][0][0]["key"], item_key);
  EXPECT_NEAR(old["results"][0][0]["score"].get<double>(), 1.0, 1e-4);
  EXPECT_EQ(old["results"][0][0]["embedding"], "old");
  // The rolling-out model's query meets old embeddings (nothing backfilled yet).
  const json nw = body(c.Post("/api/search/image?k=5", test_png(image_index), "image/png"));
  EXPECT_EQ(nw["model"], "new");
  for (const auto& h : nw["results"][0]) EXPECT_EQ(h["embedding"], "old");
  // Not an image: a clear 415, the server stays up.
  const auto bad = c.Post("/api/search/image", std::string("GIF89a-not-really"), "image/gif");
  EXPECT_EQ(status_of(bad), 415);
  EXPECT_EQ(status_of(c.Get("/api/health")), 200);
  // Report and curve found beside the gallery.
  EXPECT_EQ(body(c.Get("/api/report"))["upgrade"]["new_model"], "new");
  EXPECT_FALSE(body(c.Get("/api/curve"))["curves"].empty());
  EXPECT_EQ(s.stop(SIGTERM), 0) << s.err();
  EXPECT_NE(s.out().find("dualtune serve: stopped"), std::string::npos) << s.out();
}

TEST_F(ServeCli, SigtermDuringABackfillStopsAtABatchBoundaryAndARestartFinishesIt) {
  const std::string g = copy_gallery("sigterm");
  const std::string ref = copy_gallery("sigterm_ref");
  run(bin() + " gallery backfill " + ref + " --order random --seed 5 --batch 4 --quiet --threads 1 --workers 0");
  {
    ServeProcess s(g + " --port 0 --token-file " + dir + "/token --quiet", dir);
    ASSERT_GT(s.port, 0);
    auto c = s.client();
    const auto r = c.Post("/api/backfill", {{"Authorization", "Bearer " + kToken}},
                          json{{"order", "random"}, {"seed", 5}, {"batch_size", 4}}.dump(), "application/json");
    ASSERT_EQ(status_of(r), 202) << (r ? r->body : "");
    // Until two batches are in (polling; the bound only guards against a hang).
    for (int i = 0; i < 12000 && body(c.Get("/api/backfill"))["done"].get<int64_t>() < 8; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_EQ(s.stop(SIGTERM), 0) << s.err();
    EXPECT_NE(s.err().find("SIGTERM: stopping"), std::string::npos) << s.err();
    EXPECT_NE(s.out().find("dualtune serve: stopped; backfill of 'new'"), std::string::npos) << s.out();
  }
  const int64_t done = static_cast<int64_t>(vectors_by_key(g, "new").size());
  EXPECT_GE(done, 8);
  EXPECT_EQ(done % 4 == 0 || done == 240, true) << done << " items: stopped inside a batch";
  {
    ServeProcess s(g + " --port 0 --token-file " + dir + "/token --quiet", dir);
    auto c = s.client();
    ASSERT_EQ(status_of(c.Post("/api/backfill", {{"Authorization", "Bearer " + kToken}}, "{}", "application/json")), 202) << s.err();
    json bf;
    for (int i = 0; i < 2400; ++i) {  // up to 2 min: a loaded 2-core machine embeds ~5 items/s
      bf = body(c.Get("/api/backfill"));
      if (!bf["running"].get<bool>()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_EQ(bf["state"], "finished") << bf.dump();
    EXPECT_EQ(s.stop(SIGINT), 0);
  }
  EXPECT_EQ(vectors_by_key(g, "new"), vectors_by_key(ref, "new"));
}

TEST_F(ServeCli, RefusesABadTokenFileAndAnAddressInUse) {
  write_text_atomic(dir + "/short_token", "abc\n");
  int st = 0;
  auto out = testdata::run_command(bin() + " serve " + dir + "/g --port 0 --token-file " + dir + "/short_token", &st);
  EXPECT_NE(st, 0);
  EXPECT_NE(out.find("expected a token of at least 16 characters, found 3"), std::string::npos) << out;
  out = testdata::run_command(bin() + " serve " + dir + "/nowhere --port 0", &st);
  EXPECT_NE(st, 0);
  EXPECT_NE(out.find(dir + "/nowhere"), std::string::npos) << out;
  ServeProcess s(copy_gallery("port") + " --port 0 --quiet", dir);
  out = testdata::run_command(bin() + " serve " + dir + "/g --port " + std::to_string(s.port), &st);
  EXPECT_NE(st, 0);
  EXPECT_NE(out.find("cannot listen on 127.0.0.1:" + std::to_string(s.port)), std::string::npos) << out;
  EXPECT_EQ(s.stop(), 0);
}

// The page in a real browser. Needs Node.js, puppeteer-core (tests/browser, `npm ci`)
// and Debian's chromium: scripts/install_deps.sh installs all three.
TEST_F(ServeCli, PageInHeadlessChromiumRunsAQueryAndShowsABackfillStep) {
  const std::string browser_dir = std::string(DUALTUNE_SOURCE_DIR) + "/tests/browser";
  ASSERT_TRUE(fs::exists("/usr/bin/chromium")) << "chromium not found: run scripts/install_deps.sh (Debian package chromium)";
  ASSERT_TRUE(fs::exists(browser_dir + "/node_modules/puppeteer-core"))
      << "puppeteer-core not installed in " << browser_dir << ": run scripts/install_deps.sh (npm ci there)";
  const std::string out_dir = (fs::path(DUALTUNE_BINARY).parent_path() / "test_output/serve_page").string();
  ServeProcess s(copy_gallery("page") + " --port 0 --token-file " + dir + "/token --quiet", dir);
  ASSERT_GT(s.port, 0);
  int st = 0;
  const auto out = testdata::run_command("cd " + browser_dir + " && node serve_page.mjs --url http://127.0.0.1:" +
                                             std::to_string(s.port) + "/ --out " + out_dir + " --token " + kToken +
                                             " --k 8 --step 32",
                                         &st);
  EXPECT_EQ(st, 0) << out << "\nserver stderr:\n" << s.err();
  EXPECT_TRUE(fs::exists(out_dir + "/serve_page.png")) << out;
  EXPECT_EQ(s.stop(), 0);
}

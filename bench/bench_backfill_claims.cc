// A full backfill of n items through 1, 2 and 4 worker processes, three ways in one run
// (the machine is shared and noisy: compare within a run, by ratio):
//   pg claims      PostgreSQL, every process claims batches and commits them itself
//                  (Gallery::backfill_claimed, store.h batch claims)
//   sqlite claims  the same protocol on an SQLite gallery (processes of one machine)
//   sqlite tcp     today's SQLite path: rank 0 the only writer, ranks 1..W-1 stream their
//                  vectors to it over TCP (distributed_backfill.h)
// The "model" is synthetic: each item costs work_us microseconds of busy CPU, then its
// vector (d = 128) is a function of its key, so the stored vectors are checked against
// values computed here. Time = fork of the workers to the last one's exit.
//
//   bench_backfill_claims URL [n=10000] [batch=256] [work_us=300] [dir=TMPDIR/bench_claims]
// URL: a postgresql:// URL whose user may CREATE DATABASE (tests/scripts/pg_cluster.sh
// run gives one in $DUALTUNE_TEST_PG_URL); one fresh database per run.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <functional>
#include <map>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dualtune/gallery/distributed_backfill.h"
#include "dualtune/gallery/gallery.h"
#include "dualtune/gallery/pg.h"

using namespace dualtune;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kOldDim = 16, kNewDim = 128;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::vector<float> key_vector(const std::string& key, int64_t d) {
  std::mt19937_64 rng(std::hash<std::string>{}(key));
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> v(static_cast<size_t>(d));
  for (auto& x : v) x = g(rng);
  return v;
}

class BusyEmbedder : public gallery::ImageEmbedder {
 public:
  explicit BusyEmbedder(int work_us) : work_us_(work_us) {}
  int64_t dim() const override { return kNewDim; }
  std::string fingerprint() const override { return "fp-new"; }
  void embed(const std::vector<std::vector<gallery::ImageRef>>& batches,
             const std::function<bool(gallery::EmbeddedBatch&)>& on_batch) override {
    for (size_t b = 0; b < batches.size(); ++b) {
      gallery::EmbeddedBatch eb;
      eb.index = static_cast<int64_t>(b);
      for (const auto& r : batches[b]) {
        const auto until = Clock::now() + std::chrono::microseconds(work_us_);
        while (Clock::now() < until) {
        }
        eb.item_ids.push_back(r.item_id);
        const auto v = key_vector(r.key, kNewDim);
        eb.vectors.insert(eb.vectors.end(), v.begin(), v.end());
        eb.errors.emplace_back();
      }
      if (!on_batch(eb)) return;
    }
  }

 private:
  int work_us_;
};

void make_gallery(const std::string& where, int64_t n) {
  std::vector<gallery::ItemRecord> items;
  std::vector<float> x;
  for (int64_t i = 0; i < n; ++i) {
    items.push_back({"item/" + std::to_string(i) + ".jpg", "", -1, 0});
    const auto v = key_vector(items.back().key + "/old", kOldDim);
    x.insert(x.end(), v.begin(), v.end());
  }
  auto g = gallery::Gallery::create(where, {"old", kOldDim, "", ""});
  g->import_vectors("old", items, kOldDim, x.data(), false);
  g->rollout({"new", kNewDim, "", "fp-new"});
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

/// Runs `work(rank)` in `world` child processes; seconds until all exited (0 exit each).
double run_ranks(int world, const std::function<void(int)>& work) {
  std::fflush(stdout);  // else every child flushes the parent's buffered lines again
  const auto t0 = Clock::now();
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r) {
    const pid_t p = ::fork();
    if (p == 0) {
      int code = 0;
      try {
        work(r);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "rank %d: %s\n", r, e.what());
        code = 1;
      }
      std::fflush(stdout);
      ::_exit(code);
    }
    pids.push_back(p);
  }
  for (pid_t p : pids) {
    int st = 0;
    ::waitpid(p, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      std::fprintf(stderr, "a worker failed (status %d)\n", st);
      std::exit(1);
    }
  }
  return since(t0);
}

/// Every item has its new vector, equal to key_vector: else exit 1.
void check(const std::string& where, int64_t n) {
  auto s = gallery::Store::open(where, true);
  const auto m = s->model("new");
  std::map<int64_t, std::string> key;
  for (const auto& r : s->items()) key[r.id] = r.record.key;
  int64_t seen = 0;
  s->for_each_vector(m.version_id, 0, [&](int64_t, int64_t id, const float* v) {
    const auto want = key_vector(key[id], kNewDim);
    if (!std::equal(want.begin(), want.end(), v)) {
      std::fprintf(stderr, "%s: item %s has another vector\n", where.c_str(), key[id].c_str());
      std::exit(1);
    }
    ++seen;
  });
  if (seen != n) {
    std::fprintf(stderr, "%s: %lld of %lld items backfilled\n", where.c_str(), static_cast<long long>(seen),
                 static_cast<long long>(n));
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s URL [n=10000] [batch=256] [work_us=300] [dir=TMPDIR/bench_claims]\n", argv[0]);
    return 2;
  }
  const std::string admin = argv[1];
  const int64_t n = argc > 2 ? std::atoll(argv[2]) : 10000;
  const int64_t batch = argc > 3 ? std::atoll(argv[3]) : 256;
  const int work_us = argc > 4 ? std::atoi(argv[4]) : 300;
  const std::string dir = argc > 5 ? argv[5] : (fs::temp_directory_path() / "bench_claims").string();
  const std::vector<int> worlds{1, 2, 4};
  std::printf("backfill of n=%lld items (d=%lld, batch %lld, %d us of CPU per item), %u cores\n",
              static_cast<long long>(n), static_cast<long long>(kNewDim), static_cast<long long>(batch), work_us,
              std::thread::hardware_concurrency());
  gallery::BackfillOptions bo;
  bo.batch_size = batch;
  bo.order = "random";
  std::vector<std::array<double, 3>> secs;
  for (int w : worlds) {
    std::array<double, 3> t{};
    // PostgreSQL, claims: a fresh database.
    const std::string db = "bench_claims_" + std::to_string(::getpid()) + "_" + std::to_string(w);
    {
      gallery::pg::Conn c(admin);
      c.exec("DROP DATABASE IF EXISTS " + db);
      c.exec("CREATE DATABASE " + db);
    }
    const size_t slash = admin.find('/', admin.find("://") + 3);
    const std::string url = admin.substr(0, slash) + "/" + db;
    auto claimed = [&](const std::string& where) {
      make_gallery(where, n);
      gallery::Gallery::open(where)->plan_backfill(bo);  // planned before the clock starts, as for tcp
      const double s = run_ranks(w, [&](int r) {
        BusyEmbedder e(work_us);
        auto o = bo;
        o.rank = r;
        o.world = w;
        gallery::ClaimOptions co;
        co.lease_seconds = 60;
        gallery::Gallery::open(where)->backfill_claimed(o, co, e);
      });
      check(where, n);
      return s;
    };
    t[0] = claimed(url);
    // SQLite, claims.
    const std::string d1 = dir + "/claims_" + std::to_string(w);
    fs::remove_all(d1);
    t[1] = claimed(d1);
    // SQLite, rank 0 writes, the others stream over TCP.
    const std::string d2 = dir + "/tcp_" + std::to_string(w);
    fs::remove_all(d2);
    make_gallery(d2, n);
    gallery::Gallery::open(d2)->plan_backfill(bo);
    gallery::BackfillRanks ranks;
    ranks.world = w;
    ranks.master_port = free_port();
    t[2] = run_ranks(w, [&](int r) {
      gallery::BackfillRanks me = ranks;
      me.rank = r;
      if (r > 0) {
        gallery::backfill_worker(me, [&](const std::string&) { return std::make_unique<BusyEmbedder>(work_us); });
        return;
      }
      BusyEmbedder e(work_us);
      std::unique_ptr<gallery::TcpWorkers> workers;
      if (w > 1) workers = std::make_unique<gallery::TcpWorkers>(me);
      gallery::Gallery::open(d2)->backfill(bo, e, {}, nullptr, workers.get());
    });
    check(d2, n);
    {
      gallery::pg::Conn c(admin);
      c.exec("DROP DATABASE IF EXISTS " + db + " WITH (FORCE)");
    }
    secs.push_back(t);
  }
  std::printf("\n%-8s | %-22s | %-22s | %-22s | %s\n", "workers", "pg claims  s (items/s)", "sqlite claims  s (i/s)",
              "sqlite tcp  s (i/s)", "pg/sqlite-claims  pg/sqlite-tcp (time)");
  for (size_t i = 0; i < worlds.size(); ++i) {
    const auto& t = secs[i];
    auto cell = [&](double s) {
      char b[64];
      std::snprintf(b, sizeof b, "%6.2f (%6.0f)", s, double(n) / s);
      return std::string(b);
    };
    std::printf("%-8d | %-22s | %-22s | %-22s | %5.2f  %5.2f\n", worlds[i], cell(t[0]).c_str(), cell(t[1]).c_str(),
                cell(t[2]).c_str(), t[0] / t[1], t[0] / t[2]);
  }
  std::printf("\nspeed-up over 1 worker: ");
  for (size_t i = 0; i < worlds.size(); ++i)
    std::printf("%d: pg %.2f, sqlite claims %.2f, sqlite tcp %.2f%s", worlds[i], secs[0][0] / secs[i][0],
                secs[0][1] / secs[i][1], secs[0][2] / secs[i][2], i + 1 < worlds.size() ? "; " : "\n");
  return 0;
}

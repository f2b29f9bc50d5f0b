// Sharded search against one unsharded server, on loopback, in one run: the same gallery
// served by (a) one `dualtune serve` process and (b) two shard processes (`--shard 0/2`,
// `--shard 1/2`) behind a `dualtune proxy` process (serve/shard_proxy.h). The same
// single-vector exact top-k queries of the rolling-out model (the mixed old/new,
// calibrated path) are sent by --clients concurrent clients to each setup in turn; the
// run prints throughput, client-side p50 / p99 latency and each server process's
// resident memory side by side, with the ratios sharded / unsharded, and checks that
// the proxy's answers equal the unsharded ones (ids and scores) on the first queries.
//
// The gallery (SQLite, in --dir): --items items with "old" vectors (deployed) and "new"
// vectors (rolling out) for 40 % of them, dim --dim, drawn around 1000 class centres,
// with the score calibrations fitted, so the default merge is the calibrated one.
// Each server is a forked child of this program running the same Service / ShardProxy
// as the CLI's (no libtorch needed); the clients run on this process's threads, and all
// share the machine's cores.
//
//   build/bench_serve_shards                              # 100k items, d 128, 4 clients
//   build/bench_serve_shards --items 200000 --clients 8 --queries 4000
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "dualtune/gallery/gallery.h"
#include "dualtune/serve/service.h"
#include "dualtune/serve/shard_proxy.h"

using namespace dualtune;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct Args {
  int64_t items = 100000, dim = 128, k = 10, queries = 2000;
  int clients = 4, server_threads = 4;
  std::string dir = (fs::temp_directory_path() / "dualtune_bench_shards").string();
};

/// Class centre (the same for every call: both models see the same classes) + noise
/// drawn from `seed`.
std::vector<float> around_classes(int64_t n, int64_t d, int64_t classes, float noise, uint64_t seed) {
  std::mt19937_64 centre_rng(12345), rng(seed);
  std::normal_distribution<float> g;
  std::vector<float> centre(static_cast<size_t>(classes * d));
  for (auto& x : centre) x = g(centre_rng);
  std::vector<float> v(static_cast<size_t>(n * d));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < d; ++c) v[static_cast<size_t>(i * d + c)] = centre[static_cast<size_t>((i % classes) * d + c)] + noise * g(rng);
  return v;
}

void build_gallery(const Args& a) {
  fs::remove_all(a.dir);
  auto g = gallery::Gallery::create(a.dir, {"old", a.dim, "", ""});
  const int64_t classes = 1000;
  const auto old_v = around_classes(a.items, a.dim, classes, 0.9f, 1);
  const auto new_v = around_classes(a.items, a.dim, classes, 0.6f, 2);
  std::vector<gallery::ItemRecord> items;
  for (int64_t i = 0; i < a.items; ++i) items.push_back({"item" + std::to_string(i), "c" + std::to_string(i % classes), -1, 0});
  g->import_vectors("old", items, a.dim, old_v.data(), false);
  g->rollout({"new", a.dim, "", ""});
  std::vector<gallery::ItemRecord> part;
  std::vector<float> part_v;
  for (int64_t i = 0; i < a.items; ++i)
    if (i % 5 < 2) {
      part.push_back(items[static_cast<size_t>(i)]);
      part_v.insert(part_v.end(), new_v.begin() + i * a.dim, new_v.begin() + (i + 1) * a.dim);
    }
  g->import_vectors("new", part, a.dim, part_v.data(), false);
  const int64_t nfit = std::min<int64_t>(a.items, 4000);
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < nfit; ++i) labels.push_back(i % 200);  // 20 per class over the first 4000 items' classes
  const auto fo = around_classes(nfit, a.dim, 200, 0.9f, 1), fn = around_classes(nfit, a.dim, 200, 0.6f, 2);
  g->fit_transition("new", nfit, fo.data(), fn.data(), labels.data());
}

/// A child process running a server; its port comes back through a pipe.
struct Child {
  pid_t pid = -1;
  int port = 0;
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
};

volatile sig_atomic_t g_stop = 0;
extern "C" void on_term(int) { g_stop = 1; }

template <class Server>
void serve_until_term(Server& s, int fd) {
  const int port = s.bind("127.0.0.1", 0);
  if (::write(fd, &port, sizeof port) != sizeof port) _exit(3);
  ::close(fd);
  std::thread waiter([&s] {
    while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    s.shutdown();
  });
  s.run();
  waiter.join();
}

Child spawn(const std::function<void(int fd)>& body) {
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
  Child c;
  c.pid = ::fork();
  if (c.pid == 0) {
    ::close(fds[0]);
    ::signal(SIGTERM, on_term);
    try {
      body(fds[1]);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "server child: %s\n", e.what());
      _exit(2);
    }
    _exit(0);
  }
  ::close(fds[1]);
  if (::read(fds[0], &c.port, sizeof c.port) != sizeof c.port) throw std::runtime_error("a server child failed to start");
  ::close(fds[0]);
  return c;
}

Child spawn_serve(const Args& a, gallery::Shard shard) {
  return spawn([&a, shard](int fd) {
    serve::use_single_threaded_blas();
    auto g = gallery::Gallery::open(a.dir);
    serve::ServiceOptions o;
    o.shard = shard;
    o.threads = a.server_threads;
    serve::Service s(*g, {}, o);
    serve_until_term(s, fd);
  });
}

double rss_mb(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0;
}

struct Load {
  double qps = 0, p50 = 0, p99 = 0;
  int64_t errors = 0;
};

Load run_load(const Args& a, int port, const std::vector<std::string>& bodies) {
  std::vector<std::vector<double>> lat(static_cast<size_t>(a.clients));
  std::vector<int64_t> errors(static_cast<size_t>(a.clients), 0);
  std::atomic<size_t> next{0};
  const auto t0 = Clock::now();
  std::vector<std::thread> th;
  for (int c = 0; c < a.clients; ++c)
    th.emplace_back([&, c] {
      httplib::Client cl("127.0.0.1", port);
      cl.set_keep_alive(true);
      cl.set_tcp_nodelay(true);
      cl.set_read_timeout(60, 0);
      for (size_t i; (i = next.fetch_add(1)) < bodies.size();) {
        const auto q0 = Clock::now();
        auto r = cl.Post("/api/search", bodies[i], "application/json");
        lat[static_cast<size_t>(c)].push_back(std::chrono::duration<double, std::milli>(Clock::now() - q0).count());
        if (!r || r->status != 200) ++errors[static_cast<size_t>(c)];
      }
    });
  for (auto& t : th) t.join();
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  std::vector<double> all;
  Load l;
  for (size_t c = 0; c < lat.size(); ++c) all.insert(all.end(), lat[c].begin(), lat[c].end()), l.errors += errors[c];
  std::sort(all.begin(), all.end());
  l.qps = double(all.size()) / wall;
  l.p50 = all[all.size() / 2];
  l.p99 = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  return l;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("expected a value after " + f);
      return argv[++i];
    };
    if (f == "--items") a.items = std::stoll(next());
    else if (f == "--dim") a.dim = std::stoll(next());
    else if (f == "--k") a.k = std::stoll(next());
    else if (f == "--queries") a.queries = std::stoll(next());
    else if (f == "--clients") a.clients = std::stoi(next());
    else if (f == "--server-threads") a.server_threads = std::stoi(next());
    else if (f == "--dir") a.dir = next();
    else {
      std::fprintf(stderr, "usage: bench_serve_shards [--items N] [--dim D] [--k K] [--queries Q] [--clients C] "
                           "[--server-threads T] [--dir DIR]\n");
      return 2;
    }
  }
  // Everything that starts threads (BLAS, OpenMP, the servers) runs in forked children:
  // this process stays single-threaded until the clients start.
  const auto tb = Clock::now();
  Child builder = spawn([&a](int fd) {
    build_gallery(a);
    int zero = 0;
    if (::write(fd, &zero, sizeof zero) != sizeof zero) _exit(3);
  });
  ::waitpid(builder.pid, nullptr, 0);
  std::printf("gallery: %lld items, d %lld, 40%% backfilled, calibrated (%s), built in %.1f s\n",
              static_cast<long long>(a.items), static_cast<long long>(a.dim), a.dir.c_str(),
              std::chrono::duration<double>(Clock::now() - tb).count());

  Child whole = spawn_serve(a, {});
  Child s0 = spawn_serve(a, {0, 2}), s1 = spawn_serve(a, {1, 2});
  Child proxy = spawn([&](int fd) {
    serve::ProxyOptions po;
    po.shards = {s0.url(), s1.url()};
    po.threads = a.server_threads;
    serve::ShardProxy p(po);
    serve_until_term(p, fd);
  });

  std::mt19937_64 rng(99);
  std::normal_distribution<float> g;
  std::vector<std::string> bodies;
  for (int64_t q = 0; q < a.queries; ++q) {
    std::vector<float> v(static_cast<size_t>(a.dim));
    for (auto& x : v) x = g(rng);
    bodies.push_back(json{{"model", "new"}, {"k", a.k}, {"vector", v}}.dump());
  }
  // Warm-up (builds each server's caches) and the exactness check.
  httplib::Client cw("127.0.0.1", whole.port), cp("127.0.0.1", proxy.port);
  cw.set_read_timeout(300, 0);
  cp.set_read_timeout(300, 0);
  int mismatches = 0;
  for (size_t i = 0; i < std::min<size_t>(50, bodies.size()); ++i) {
    auto rw = cw.Post("/api/search", bodies[i], "application/json");
    auto rp = cp.Post("/api/search", bodies[i], "application/json");
    if (!rw || !rp || rw->status != 200 || rp->status != 200) {
      std::fprintf(stderr, "warm-up search failed\n");
      return 1;
    }
    if (json::parse(rw->body)["results"] != json::parse(rp->body)["results"]) ++mismatches;
  }
  std::printf("exactness: %d of %zu proxy answers differ from the unsharded ones\n", mismatches,
              std::min<size_t>(50, bodies.size()));

  const Load lw = run_load(a, whole.port, bodies);
  const Load lp = run_load(a, proxy.port, bodies);
  const double mw = rss_mb(whole.pid), m0 = rss_mb(s0.pid), m1 = rss_mb(s1.pid), mp = rss_mb(proxy.pid);
  std::printf("\n%d clients, %lld queries each setup, k %lld, exact (flat) search, merge calibrated\n", a.clients,
              static_cast<long long>(a.queries), static_cast<long long>(a.k));
  std::printf("%-26s %9s %9s %9s %8s  %s\n", "setup", "q/s", "p50 ms", "p99 ms", "errors", "RSS per process (MB)");
  std::printf("%-26s %9.1f %9.2f %9.2f %8lld  %.0f\n", "unsharded (1 process)", lw.qps, lw.p50, lw.p99,
              static_cast<long long>(lw.errors), mw);
  std::printf("%-26s %9.1f %9.2f %9.2f %8lld  %.0f + %.0f shards, %.0f proxy\n", "2 shards + proxy", lp.qps, lp.p50,
              lp.p99, static_cast<long long>(lp.errors), m0, m1, mp);
  std::printf("%-26s %9.2f %9.2f %9.2f %8s  %.2f per shard\n", "ratio sharded/unsharded", lp.qps / lw.qps, lp.p50 / lw.p50,
              lp.p99 / lw.p99, "", (m0 + m1) / 2 / mw);

  for (const Child& c : {proxy, s0, s1, whole}) ::kill(c.pid, SIGTERM);
  for (const Child& c : {proxy, s0, s1, whole}) ::waitpid(c.pid, nullptr, 0);
  fs::remove_all(a.dir);
  return mismatches == 0 && lw.errors == 0 && lp.errors == 0 ? 0 : 1;
}

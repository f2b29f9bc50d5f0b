// Load test of `dualtune serve` on loopback: N concurrent clients send exact top-k
// searches of the rolling-out model (the mixed old/new path) over HTTP, first alone, then
// while a backfill runs at each niceness of --backfill-nice (default 0, then the
// service's default 10), and the phases are printed side by side: throughput, client-side
// p50 / p90 / p99 / max latency, errors, the server's own p50 / p99 (/api/metrics) and
// the backfill's rate. Bounded in time (--seconds per phase) and count
// (--max-requests per phase).
//
// The gallery: --items vectors of dimension --dim imported for the deployed model "old"
// (seeded Gaussian), a model "new" of the same dimension rolled out with nothing
// backfilled. The backfill embeds with a stand-in model that burns --embed-us of CPU
// per item (a real model's cost; default ≈ convnet extraction on this machine) and
// returns seeded vectors; the store, the commits and the search caches are the real ones.
// The server runs in this process (the same Service as `dualtune serve`, without
// libtorch), the clients on their own threads: all share the machine's cores.
//
//   build/bench_serve                        # 100k items, D 128, 4 clients, k 10, 15 s per phase
//   build/bench_serve --items 10000 --clients 8 --seconds 5
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
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
#include "dualtune/serve/metrics.h"
#include "dualtune/serve/service.h"

using namespace dualtune;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

struct Args {
  int64_t items = 100000, dim = 128, k = 10, max_requests = 200000, batch = 256;
  int clients = 4, server_threads = 4;
  std::vector<int> backfill_nice = {0, serve::ServiceOptions{}.backfill_nice};
  double seconds = 15, embed_us = 300;
  std::string dir = (fs::temp_directory_path() / "dualtune_bench_serve").string();
};

std::vector<float> gaussian(int64_t n, int64_t d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g;
  std::vector<float> v(static_cast<size_t>(n * d));
  for (auto& x : v) x = g(rng);
  return v;
}

/// Stands in for a model: per item, --embed-us of CPU, then a vector seeded by the item id.
class BurnEmbedder : public gallery::ImageEmbedder {
 public:
  BurnEmbedder(int64_t dim, double us) : dim_(dim), us_(us) {}
  int64_t dim() const override { return dim_; }
  std::string fingerprint() const override { return "bench:" + std::to_string(dim_); }
  void embed(const std::vector<std::vector<gallery::ImageRef>>& batches,
             const std::function<bool(gallery::EmbeddedBatch&)>& on_batch) override {
    for (size_t b = 0; b < batches.size(); ++b) {
      gallery::EmbeddedBatch eb;
      eb.index = static_cast<int64_t>(b);
      for (const auto& r : batches[b]) {
        const auto until = Clock::now() + std::chrono::duration<double, std::micro>(us_);
        volatile double sink = 0;
        while (Clock::now() < until) sink = sink + 1;
        eb.item_ids.push_back(r.item_id);
        const auto v = gaussian(1, dim_, 1000003ull * static_cast<uint64_t>(r.item_id));
        eb.vectors.insert(eb.vectors.end(), v.begin(), v.end());
        eb.errors.emplace_back();
      }
      if (!on_batch(eb)) return;
    }
  }

 private:
  int64_t dim_;
  double us_;
};

std::string loadavg() {
  std::ifstream is("/proc/loadavg");
  std::string a, b, c;
  is >> a >> b >> c;
  return a + " " + b + " " + c;
}

struct PhaseResult {
  std::string name;
  int64_t requests = 0, errors = 0;
  double seconds = 0;
  std::vector<double> latencies_ms;
  double server_p50 = 0, server_p99 = 0;
  int64_t backfilled = 0;
  std::string first_error;
};

/// Runs the clients until --seconds or --max-requests.
PhaseResult run_phase(const std::string& name, const Args& a, int port, const std::vector<std::string>& bodies) {
  PhaseResult out;
  out.name = name;
  std::atomic<int64_t> sent{0};
  std::atomic<bool> stop{false};
  std::vector<std::vector<double>> lat(static_cast<size_t>(a.clients));
  std::vector<int64_t> errors(static_cast<size_t>(a.clients), 0);
  std::vector<std::string> first_error(static_cast<size_t>(a.clients));
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < a.clients; ++c) {
    threads.emplace_back([&, c] {
      httplib::Client cli("127.0.0.1", port);
      cli.set_keep_alive(true);
      cli.set_tcp_nodelay(true);
      cli.set_read_timeout(30, 0);
      size_t i = static_cast<size_t>(c) * 7919;
      while (!stop.load() && sent.fetch_add(1) < a.max_requests) {
        const std::string& body = bodies[i++ % bodies.size()];
        const auto s = Clock::now();
        const auto r = cli.Post("/api/search", body, "application/json");
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - s).count();
        bool ok = r && r->status == 200;
        // Check one answer in 50 fully (k hits), the rest by status only (parsing is client work).
        if (ok && i % 50 == 0) ok = nlohmann::json::parse(r->body)["results"][0].size() == static_cast<size_t>(a.k);
        if (!ok) {
          if (errors[c]++ == 0) first_error[c] = r ? "HTTP " + std::to_string(r->status) + " " + r->body : httplib::to_string(r.error());
        }
        lat[static_cast<size_t>(c)].push_back(ms);
        if (std::chrono::duration<double>(Clock::now() - t0).count() >= a.seconds) stop = true;
      }
    });
  }
  for (auto& t : threads) t.join();
  out.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  for (int c = 0; c < a.clients; ++c) {
    out.latencies_ms.insert(out.latencies_ms.end(), lat[c].begin(), lat[c].end());
    out.errors += errors[c];
    if (out.first_error.empty()) out.first_error = first_error[c];
  }
  out.requests = static_cast<int64_t>(out.latencies_ms.size());
  return out;
}

void server_percentiles(int port, PhaseResult& r) {
  httplib::Client cli("127.0.0.1", port);
  const auto m = cli.Get("/api/metrics");
  if (!m) return;
  const auto metrics = nlohmann::json::parse(m->body);
  for (const auto& route : metrics["routes"])
    if (route["route"] == "POST /api/search" && route["p50_ms"].is_number()) {
      r.server_p50 = route["p50_ms"];
      r.server_p99 = route["p99_ms"];
    }
}

void usage_error(const std::string& what) {
  std::fprintf(stderr, "bench_serve: %s\nusage: bench_serve [--items N] [--dim D] [--clients C] [--k K] [--seconds S] "
                       "[--max-requests R] [--server-threads T] [--batch B] [--embed-us U] [--backfill-nice N,N...] [--dir DIR]\n",
               what.c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (i + 1 >= argc) usage_error("missing value after " + k);
    const std::string v = argv[++i];
    try {
      if (k == "--items") a.items = std::stoll(v);
      else if (k == "--dim") a.dim = std::stoll(v);
      else if (k == "--clients") a.clients = std::stoi(v);
      else if (k == "--k") a.k = std::stoll(v);
      else if (k == "--seconds") a.seconds = std::stod(v);
      else if (k == "--max-requests") a.max_requests = std::stoll(v);
      else if (k == "--server-threads") a.server_threads = std::stoi(v);
      else if (k == "--batch") a.batch = std::stoll(v);
      else if (k == "--embed-us") a.embed_us = std::stod(v);
      else if (k == "--dir") a.dir = v;
      else if (k == "--backfill-nice") {
        a.backfill_nice.clear();
        for (size_t p = 0, q; p <= v.size(); p = q + 1) {
          q = std::min(v.find(',', p), v.size());
          a.backfill_nice.push_back(std::stoi(v.substr(p, q - p)));
          if (a.backfill_nice.back() < 0 || a.backfill_nice.back() > 19) usage_error("--backfill-nice takes values 0-19");
        }
      }
      else usage_error("unknown option " + k);
    } catch (const std::invalid_argument&) {
      usage_error("expected a number after " + k + ", found '" + v + "'");
    }
  }
  if (a.items < 1 || a.dim < 1 || a.clients < 1 || a.k < 1 || a.seconds <= 0) usage_error("expected positive values");

  std::printf("load before: %s (1, 5, 15 min; this machine is shared)\n", loadavg().c_str());
  const bool single_blas = serve::use_single_threaded_blas();  // as `dualtune serve` does
  const auto tb = Clock::now();
  fs::remove_all(a.dir);
  BurnEmbedder embedder(a.dim, a.embed_us);
  auto g = gallery::Gallery::create(a.dir, {"old", a.dim, "", ""});
  {
    std::vector<gallery::ItemRecord> items;
    items.reserve(static_cast<size_t>(a.items));
    for (int64_t i = 0; i < a.items; ++i) items.push_back({"item/" + std::to_string(i), std::to_string(i % 100), -1, 0});
    const auto v = gaussian(a.items, a.dim, 1);
    g->import_vectors("old", items, a.dim, v.data(), false);
  }
  g->rollout({"new", a.dim, "bench-model", embedder.fingerprint()});
  std::printf("gallery: %lld items, D %lld, built in %.1f s\n", static_cast<long long>(a.items),
              static_cast<long long>(a.dim), std::chrono::duration<double>(Clock::now() - tb).count());

  // Query bodies: seeded Gaussian vectors of the new model, pre-serialised.
  std::vector<std::string> bodies;
  const auto q = gaussian(64, a.dim, 2);
  for (int i = 0; i < 64; ++i)
    bodies.push_back(nlohmann::json{{"model", "new"}, {"k", a.k},
                                    {"vector", std::vector<float>(q.begin() + i * a.dim, q.begin() + (i + 1) * a.dim)}}
                         .dump());

  // One service per phase (its metrics window then covers that phase only): searches
  // alone, then searches while a backfill runs at each --backfill-nice value in turn
  // (each continues the stored plan where the previous one paused).
  std::vector<PhaseResult> results;
  auto phase = [&](const std::string& name, int nice, bool backfill) {
    serve::ServiceOptions o;
    o.token = "bench-token-0123456789";
    o.threads = a.server_threads;
    o.backfill_nice = nice;
    serve::Service service(*g, [&](const gallery::ModelInfo& m) -> std::unique_ptr<gallery::ImageEmbedder> {
      return std::make_unique<BurnEmbedder>(m.dim, a.embed_us);
    }, o);
    const int port = service.bind("127.0.0.1", 0);
    std::thread server([&] { service.run(); });
    {  // Warm-up: the first search builds the index caches.
      httplib::Client cli("127.0.0.1", port);
      for (int i = 0; i < 20; ++i) cli.Post("/api/search", bodies[i % bodies.size()], "application/json");
    }
    httplib::Client admin("127.0.0.1", port);
    const int64_t before = g->backfill_progress("new").done;
    if (backfill) {
      const auto started = admin.Post("/api/backfill", {{"Authorization", "Bearer " + o.token}},
                                      nlohmann::json{{"batch_size", a.batch}, {"order", "random"}}.dump(), "application/json");
      if (!started || started->status != 202) {
        std::fprintf(stderr, "backfill did not start: %s\n", started ? started->body.c_str() : "no answer");
        std::exit(1);
      }
    }
    results.push_back(run_phase(name, a, port, bodies));
    // The server's percentiles cover its last 4096 requests (Metrics::kWindow).
    server_percentiles(port, results.back());
    if (backfill) admin.Post("/api/backfill/pause", {{"Authorization", "Bearer " + o.token}}, "", "application/json");
    service.shutdown();
    server.join();
    results.back().backfilled = g->backfill_progress("new").done - before;
  };
  phase("search only", 0, false);
  for (const int nice : a.backfill_nice) phase("search while backfilling, nice " + std::to_string(nice), nice, true);

  std::printf("load after: %s\n\n", loadavg().c_str());
  std::printf("| phase | clients | requests | errors | req/s | p50 ms | p90 ms | p99 ms | max ms | server p50 / p99 ms | backfill items/s |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (auto& r : results) {
    auto& l = r.latencies_ms;
    const double p50 = serve::nearest_rank(l, 0.5), p90 = serve::nearest_rank(l, 0.9), p99 = serve::nearest_rank(l, 0.99);
    const double mx = *std::max_element(l.begin(), l.end());
    char bf[32] = "–";
    if (r.backfilled > 0) std::snprintf(bf, sizeof bf, "%.0f", double(r.backfilled) / r.seconds);
    std::printf("| %s | %d | %lld | %lld | %.0f | %.1f | %.1f | %.1f | %.1f | %.1f / %.1f | %s |\n", r.name.c_str(), a.clients,
                static_cast<long long>(r.requests), static_cast<long long>(r.errors), double(r.requests) / r.seconds, p50,
                p90, p99, mx, r.server_p50, r.server_p99, bf);
    if (r.errors) std::printf("first error (%s): %s\n", r.name.c_str(), r.first_error.c_str());
  }
  std::printf("\n%lld items, D %lld, exact search, k %lld, %d server threads (BLAS %s); backfill batch %lld, stand-in "
              "model %.0f us/item; %.1f %% of the gallery backfilled at the end\n",
              static_cast<long long>(a.items), static_cast<long long>(a.dim), static_cast<long long>(a.k), a.server_threads,
              single_blas ? "1 thread" : "default threads", static_cast<long long>(a.batch), a.embed_us,
              100.0 * double(g->backfill_progress("new").done) / double(a.items));
  fs::remove_all(a.dir);
  int64_t errors = 0;
  for (const auto& r : results) errors += r.errors;
  return errors == 0 ? 0 : 1;
}

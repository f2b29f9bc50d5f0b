// The two stores side by side in one run (the machine is shared and noisy: only ratios
// are meaningful): the same n synthetic D-dimensional vectors imported through
// Gallery::import_vectors (chunks of 10000 items, each one transaction: SQLite inserts,
// PostgreSQL COPY), then a fresh read-only process-like open of each gallery whose first
// search builds the flat cache from the store (every vector read back), then exact
// search from that cache (batch queries/s, single-query p50 / p99).
//
//   bench_store_import URL [n=100000] [d=128] [nq=500] [dir=/tmp/bench_store_<n>]
// URL: a postgresql:// URL of an empty database (tests/scripts/pg_cluster.sh run gives
// one in $DUALTUNE_TEST_PG_URL). Both galleries are created afresh.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "dualtune/gallery/gallery.h"
#include "dualtune/gallery/pg.h"

using namespace dualtune;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::vector<float> gaussian(int64_t n, int64_t d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> x(static_cast<size_t>(n * d));
  for (auto& v : x) v = g(rng);
  return x;
}

struct Row {
  double import_s = 0, first_search_s = 0, qps = 0, p50 = 0, p99 = 0;
};

Row run(const std::string& where, int64_t n, int64_t d, const std::vector<float>& x, const std::vector<float>& q,
        int64_t nq) {
  Row r;
  std::vector<gallery::ItemRecord> items;
  items.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) items.push_back({"item/" + std::to_string(i) + ".jpg", "", -1, 0});
  {
    auto g = gallery::Gallery::create(where, {"old", d, "", ""});
    const auto t0 = Clock::now();
    g->import_vectors("old", items, d, x.data(), false);
    r.import_s = since(t0);
  }
  gallery::OpenOptions o;
  o.read_only = true;
  o.write_cache = false;  // both build their cache from the store, neither from a file
  auto g = gallery::Gallery::open(where, o);
  gallery::SearchOptions so;
  so.k = 10;
  so.merge = gallery::Merge::kRaw;
  auto t0 = Clock::now();
  g->search("old", 1, q.data(), d, so);
  r.first_search_s = since(t0);
  t0 = Clock::now();
  g->search("old", nq, q.data(), d, so);
  r.qps = double(nq) / since(t0);
  std::vector<double> ms;
  for (int64_t i = 0; i < nq; ++i) {
    const auto t = Clock::now();
    g->search("old", 1, q.data() + i * d, d, so);
    ms.push_back(since(t) * 1e3);
  }
  std::sort(ms.begin(), ms.end());
  r.p50 = ms[ms.size() / 2];
  r.p99 = ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !gallery::pg::is_url(argv[1])) {
    std::fprintf(stderr, "usage: bench_store_import postgresql://URL [n=100000] [d=128] [nq=500] [dir]\n");
    return 2;
  }
  const std::string url = argv[1];
  const int64_t n = argc > 2 ? std::atoll(argv[2]) : 100000;
  const int64_t d = argc > 3 ? std::atoll(argv[3]) : 128;
  const int64_t nq = argc > 4 ? std::atoll(argv[4]) : 500;
  const std::string dir = argc > 5 ? argv[5] : (fs::temp_directory_path() / ("bench_store_" + std::to_string(n))).string();
  fs::remove_all(dir);
  const auto x = gaussian(n, d, 1), q = gaussian(nq, d, 2);
  std::printf("store benchmark: n = %lld, d = %lld, %lld queries; SQLite %s, PostgreSQL %s\n",
              static_cast<long long>(n), static_cast<long long>(d), static_cast<long long>(nq), dir.c_str(),
              gallery::pg::mask_url(url).c_str());
  const Row s = run(dir, n, d, x, q, nq);
  const Row p = run(url, n, d, x, q, nq);
  std::printf("\n| n = %lld, d = %lld | import s | vectors/s | first search s (cache from store) | batch q/s | "
              "single p50 ms | single p99 ms |\n|---|---|---|---|---|---|---|\n",
              static_cast<long long>(n), static_cast<long long>(d));
  for (const auto& [name, r] : {std::make_pair("SQLite", s), std::make_pair("PostgreSQL", p)})
    std::printf("| %s | %.1f | %.0f | %.2f | %.0f | %.3f | %.3f |\n", name, r.import_s, double(n) / r.import_s,
                r.first_search_s, r.qps, r.p50, r.p99);
  std::printf("| PostgreSQL / SQLite | %.2f× time | | %.2f× time | %.2f× | %.2f× | %.2f× |\n", p.import_s / s.import_s,
              p.first_search_s / s.first_search_s, p.qps / s.qps, p.p50 / s.p50, p.p99 / s.p99);
  fs::remove_all(dir);
  return 0;
}

// The two stores side by side in one run (the machine is shared and noisy: only ratios
// are meaningful): the same n synthetic D-dimensional vectors imported through
// Gallery::import_vectors (chunks of 10000 items, each one transaction: SQLite inserts,
// PostgreSQL COPY), then a fresh read-only process-like open of each gallery whose first
// search builds the flat cache from the store (every vector read back), then exact
// search from both caches (batch queries/s in 5 rounds alternating the two sides;
// single-query p50 / p99 over 5 passes, the two sides interleaved query by query).
//
//   bench_store_import URL [n=100000] [d=128] [nq=500] [dir=/tmp/bench_store_<n>]
// URL: a postgresql:// URL of an empty database (tests/scripts/pg_cluster.sh run gives
// one in $DUALTUNE_TEST_PG_URL). Both galleries are created afresh.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
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
  double import_s = 0, first_search_s = 0, p50 = 0, p99 = 0;
  std::vector<double> qps;  ///< batch queries/s, one per round
};

gallery::SearchOptions search_options() {
  gallery::SearchOptions so;
  so.k = 10;
  so.merge = gallery::Merge::kRaw;
  return so;
}

/// Imports the n vectors into a new gallery at `where`, then opens it read-only, as a
/// fresh process would, and times its first search (the flat cache built from the store).
std::unique_ptr<gallery::Gallery> import_and_open(const std::string& where, int64_t n, int64_t d,
                                                  const std::vector<float>& x, const std::vector<float>& q, Row& r) {
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
  // As `dualtune serve` opens it (--refresh-ms 1000): on PostgreSQL a search asks the
  // server's write sequence only after an announcement or a second; the library's
  // default, 0, adds a round trip to every search (~0.4 ms on loopback). SQLite reads
  // its data_version at every search either way (a local read).
  o.refresh_ms = 1000;
  auto g = gallery::Gallery::open(where, o);
  const auto t0 = Clock::now();
  g->search("old", 1, q.data(), d, search_options());
  r.first_search_s = since(t0);
  return g;
}

double batch_qps(gallery::Gallery& g, const std::vector<float>& q, int64_t nq, int64_t d) {
  const auto t0 = Clock::now();
  g.search("old", nq, q.data(), d, search_options());
  return double(nq) / since(t0);
}

double search_ms(gallery::Gallery& g, const float* q, int64_t d) {
  const auto t = Clock::now();
  g.search("old", 1, q, d, search_options());
  return since(t) * 1e3;
}

/// Nearest-rank percentile p (0-100) of the values.
double percentile(std::vector<double> v, int p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, v.size() * static_cast<size_t>(p) / 100)];
}

/// Single-query latencies of both sides, interleaved query by query (which side goes
/// first alternates), so that a slow spell of the machine falls on both; `rounds` passes
/// over the nq queries. Fills p50/p99 over all samples and returns each round's p99 ratio
/// (PostgreSQL / SQLite time).
std::vector<double> single_latencies(gallery::Gallery& gs, gallery::Gallery& gp, const std::vector<float>& q, int64_t nq,
                                     int64_t d, int rounds, Row& s, Row& p) {
  std::vector<double> all_s, all_p, ratios;
  for (int round = 0; round < rounds; ++round) {
    std::vector<double> ms_s, ms_p;
    for (int64_t i = 0; i < nq; ++i) {
      const float* qi = q.data() + i * d;
      if ((i + round) % 2 == 0) {
        ms_s.push_back(search_ms(gs, qi, d));
        ms_p.push_back(search_ms(gp, qi, d));
      } else {
        ms_p.push_back(search_ms(gp, qi, d));
        ms_s.push_back(search_ms(gs, qi, d));
      }
    }
    ratios.push_back(percentile(ms_p, 99) / percentile(ms_s, 99));
    all_s.insert(all_s.end(), ms_s.begin(), ms_s.end());
    all_p.insert(all_p.end(), ms_p.begin(), ms_p.end());
  }
  s.p50 = percentile(all_s, 50), s.p99 = percentile(all_s, 99);
  p.p50 = percentile(all_p, 50), p.p99 = percentile(all_p, 99);
  return ratios;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
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
  // Both imports first, then the searches of the two caches alternate (SQLite first in
  // odd rounds, PostgreSQL first in even ones), so a slow spell of the machine, or the
  // server's own work after the import (autovacuum), falls on both sides.
  Row s, p;
  auto gs = import_and_open(dir, n, d, x, q, s);
  auto gp = import_and_open(url, n, d, x, q, p);
  constexpr int kRounds = 5;
  std::vector<double> ratios;
  for (int round = 0; round < kRounds; ++round) {
    if (round % 2 == 0) {
      s.qps.push_back(batch_qps(*gs, q, nq, d));
      p.qps.push_back(batch_qps(*gp, q, nq, d));
    } else {
      p.qps.push_back(batch_qps(*gp, q, nq, d));
      s.qps.push_back(batch_qps(*gs, q, nq, d));
    }
    ratios.push_back(p.qps.back() / s.qps.back());
  }
  const auto p99_ratios = single_latencies(*gs, *gp, q, nq, d, kRounds, s, p);
  std::printf("\n| n = %lld, d = %lld | import s | vectors/s | first search s (cache from store) | batch q/s, median of "
              "%d rounds (min-max) | single p50 ms | single p99 ms (%d × %lld queries, interleaved) |\n"
              "|---|---|---|---|---|---|---|\n",
              static_cast<long long>(n), static_cast<long long>(d), kRounds, kRounds, static_cast<long long>(nq));
  for (const auto& [name, r] : {std::make_pair("SQLite", &s), std::make_pair("PostgreSQL", &p)})
    std::printf("| %s | %.1f | %.0f | %.2f | %.0f (%.0f-%.0f) | %.3f | %.3f |\n", name, r->import_s,
                double(n) / r->import_s, r->first_search_s, median(r->qps),
                *std::min_element(r->qps.begin(), r->qps.end()), *std::max_element(r->qps.begin(), r->qps.end()),
                r->p50, r->p99);
  std::printf("| PostgreSQL / SQLite | %.2f× time | | %.2f× time | %.2f× (median of per-round ratios, %.2f-%.2f) | "
              "%.2f× time | %.2f× time (per-round p99 ratios %.2f-%.2f) |\n",
              p.import_s / s.import_s, p.first_search_s / s.first_search_s, median(ratios),
              *std::min_element(ratios.begin(), ratios.end()), *std::max_element(ratios.begin(), ratios.end()),
              p.p50 / s.p50, p.p99 / s.p99, *std::min_element(p99_ratios.begin(), p99_ratios.end()),
              *std::max_element(p99_ratios.begin(), p99_ratios.end()));
  fs::remove_all(dir);
  return 0;
}

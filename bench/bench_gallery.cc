// Gallery search speed against bare FAISS, measured side by side in one run (the
// machine is shared and noisy: only ratios are meaningful).
//
//   exact   D-dimensional synthetic embeddings (clustered, as trained embeddings are)
//           imported through Gallery::import_vectors, then
//             batch:   nq queries in one call, queries/s
//             single:  nq queries one at a time, p50 / p99 latency
//           for Gallery::search (flat cache, one version) and for a bare
//           faiss::IndexFlatIP over the same normalised vectors. Also: a mixed gallery
//           (half the items backfilled) searched by the new model.
//   ann     IVF (nlist 4·sqrt(n), several nprobe) and HNSW (M 32, several efSearch):
//           recall@10 against exact gallery search and the speed-up over it, build
//           times of both indexes. Modes ivf / hnsw: only that one (an HNSW build at 1M
//           takes long on a few cores).
//   rss     peak RSS (VmHWM) of a fresh process that opens the gallery and searches
//           (exact, then IVF), each in a child process exec'd for the measurement.
//
//   bench_gallery [n=100000] [modes=exact,ann|ivf|hnsw,rss] [d=128] [nq=1000] [dir=/tmp/bench_gallery_<n>]
// The gallery directory is reused when it already holds n items (import skipped).
#include <faiss/IndexFlat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dualtune/eval/similarity.h"
#include "dualtune/gallery/gallery.h"

using namespace dualtune;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

long vm_hwm_kb() {
  std::ifstream is("/proc/self/status");
  std::string line;
  while (std::getline(is, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

/// n vectors around n/100 cluster centres (noise 0.8 per component: same-cluster cosines about 0.6), seeded.
std::vector<float> clustered(int64_t n, int64_t d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0.f, 1.f);
  const int64_t clusters = std::max<int64_t>(1, n / 100);
  std::vector<float> centres(static_cast<size_t>(clusters * d));
  for (auto& c : centres) c = g(rng);
  std::vector<float> x(static_cast<size_t>(n * d));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = static_cast<int64_t>(rng() % static_cast<uint64_t>(clusters));
    for (int64_t k = 0; k < d; ++k) x[i * d + k] = centres[c * d + k] + 0.8f * g(rng);
  }
  return x;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(std::min<double>(v.size() - 1, p * double(v.size())))];
}

struct Timing {
  double qps = 0, p50_ms = 0, p99_ms = 0;
};

/// Batch throughput (one call) and one-at-a-time latencies of search(nq, q).
template <class F>
Timing time_search(int64_t nq, int64_t d, const float* q, F search) {
  Timing t;
  search(1, q);  // warm-up (caches)
  const auto t0 = Clock::now();
  search(nq, q);
  t.qps = double(nq) / since(t0);
  std::vector<double> lat;
  for (int64_t i = 0; i < nq; ++i) {
    const auto s = Clock::now();
    search(1, q + i * d);
    lat.push_back(since(s) * 1e3);
  }
  t.p50_ms = percentile(lat, 0.5);
  t.p99_ms = percentile(lat, 0.99);
  return t;
}

int64_t dir_bytes(const std::string& dir) {
  int64_t b = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) b += static_cast<int64_t>(e.file_size());
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t n = argc > 1 ? std::atoll(argv[1]) : 100000;
  const std::string modes = argc > 2 ? argv[2] : "exact,ann,rss";
  const int64_t d = argc > 3 ? std::atoll(argv[3]) : 128;
  const int64_t nq = argc > 4 ? std::atoll(argv[4]) : 1000;
  const std::string dir = argc > 5 ? argv[5] : "/tmp/bench_gallery_" + std::to_string(n);
  auto has = [&](const char* m) { return modes.find(m) != std::string::npos; };
  setvbuf(stdout, nullptr, _IOLBF, 0);
  if (modes.rfind("rss-child-", 0) == 0) {  // see "rss" below
    const std::string index = modes.substr(10);
    const auto all = clustered(n + nq, d, 1);
    const std::vector<float> q(all.begin() + n * d, all.end());
    auto gr = gallery::Gallery::open(dir, {true, false, {}});
    gallery::SearchOptions o;
    o.k = 10;
    o.merge = gallery::Merge::kRaw;
    o.index = index;
    gr->search("old", nq, q.data(), d, o);
    std::printf("peak RSS of a process that opens the %lld-item gallery and runs %lld %s searches: %.0f MiB\n",
                static_cast<long long>(n), static_cast<long long>(nq), index.c_str(), double(vm_hwm_kb()) / 1024);
    return 0;
  }
  std::printf("gallery search benchmark: n = %lld, d = %lld, %lld queries, %d threads, gallery %s\n",
              static_cast<long long>(n), static_cast<long long>(d), static_cast<long long>(nq),
              static_cast<int>(std::thread::hardware_concurrency()), dir.c_str());

  // Queries: further draws around the same centres (not in the gallery).
  auto x = clustered(n + nq, d, 1);
  const std::vector<float> q(x.begin() + n * d, x.end());
  x.resize(static_cast<size_t>(n * d));
  std::unique_ptr<gallery::Gallery> g;
  bool fresh = true;
  if (fs::exists(gallery::Store::db_path(dir))) {
    g = gallery::Gallery::open(dir);
    fresh = g->status().items != n;
    if (fresh) g.reset();
  }
  if (fresh) {
    fs::remove_all(dir);
    g = gallery::Gallery::create(dir, {"old", d, "", ""});
    std::vector<gallery::ItemRecord> items;
    items.reserve(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) items.push_back({"item/" + std::to_string(i) + ".jpg", "", -1, 0});
    const auto t0 = Clock::now();
    g->import_vectors("old", items, d, x.data(), false);
    const double s = since(t0);
    std::printf("import: %lld vectors in %.1f s (%.0f vectors/s), database %.0f MiB\n", static_cast<long long>(n), s,
                double(n) / s, double(fs::file_size(gallery::Store::db_path(dir))) / (1 << 20));
  }
  gallery::SearchOptions so;
  so.k = 10;
  so.merge = gallery::Merge::kRaw;

  if (has("exact")) {
    const auto t0 = Clock::now();
    g->search("old", 1, q.data(), d, so);
    std::printf("first search (loads or builds the flat cache): %.2f s\n", since(t0));
    faiss::IndexFlatIP bare(d);
    const auto xn = eval::normalized_prefix(n, d, x.data(), d);
    bare.add(n, xn.data());
    std::vector<float> D(static_cast<size_t>(nq * 10));
    std::vector<faiss::Index::idx_t> I(static_cast<size_t>(nq * 10));
    const Timing tg = time_search(nq, d, q.data(), [&](int64_t m, const float* p) { g->search("old", m, p, d, so); });
    const Timing tb = time_search(nq, d, q.data(), [&](int64_t m, const float* p) {
      const auto pn = eval::normalized_prefix(m, d, p, d);  // the gallery normalises its queries too
      bare.search(m, pn.data(), 10, D.data(), I.data());
    });
    std::printf("\n| exact search, n = %lld | batch queries/s | single p50 ms | single p99 ms |\n|---|---|---|---|\n",
                static_cast<long long>(n));
    std::printf("| gallery (one version) | %.0f | %.2f | %.2f |\n", tg.qps, tg.p50_ms, tg.p99_ms);
    std::printf("| bare IndexFlatIP | %.0f | %.2f | %.2f |\n", tb.qps, tb.p50_ms, tb.p99_ms);
    std::printf("| ratio gallery / bare | **%.2f×** throughput | %.2f× latency | %.2f× latency |\n\n", tg.qps / tb.qps,
                tg.p50_ms / tb.p50_ms, tg.p99_ms / tb.p99_ms);
    // Mixed: a second gallery state in the same process would need a second import; the
    // mixed path (masked kernel over the old version + new version) is timed on a copy
    // with every second item backfilled, when n is small enough to copy quickly.
    if (n <= 200000) {
      const std::string mdir = dir + "_mixed";
      fs::remove_all(mdir);
      auto mg = gallery::Gallery::create(mdir, {"old", d, "", ""});
      std::vector<gallery::ItemRecord> items;
      for (int64_t i = 0; i < n; ++i) items.push_back({"item/" + std::to_string(i) + ".jpg", "", -1, 0});
      mg->import_vectors("old", items, d, x.data(), false);
      mg->rollout({"new", d, "", ""});
      std::vector<gallery::ItemRecord> half;
      std::vector<float> xh;
      for (int64_t i = 0; i < n; i += 2) {
        half.push_back(items[static_cast<size_t>(i)]);
        xh.insert(xh.end(), x.begin() + i * d, x.begin() + (i + 1) * d);
      }
      mg->import_vectors("new", half, d, xh.data(), false);
      const Timing tm = time_search(nq, d, q.data(), [&](int64_t m, const float* p) { mg->search("new", m, p, d, so); });
      std::printf("| mixed gallery (half backfilled), new queries | %.0f | %.2f | %.2f |\n", tm.qps, tm.p50_ms, tm.p99_ms);
      std::printf("| ratio mixed / bare | **%.2f×** throughput | | |\n\n", tm.qps / tb.qps);
      // The writer's cost per backfill batch: one transaction of 256 vectors (fsync).
      gallery::EmbeddedBatch eb;
      const auto ids = gallery::Store::open(mdir, true)->items_without(mg->model("new").version_id);
      const int64_t batches = std::min<int64_t>(20, static_cast<int64_t>(ids.size()) / 256);
      const auto tc = Clock::now();
      for (int64_t b = 0; b < batches; ++b) {
        eb.item_ids.assign(ids.begin() + b * 256, ids.begin() + (b + 1) * 256);
        eb.vectors.assign(x.begin(), x.begin() + 256 * d);
        eb.errors.assign(256, "");
        mg->commit_batch("new", eb);
      }
      std::printf("commit of one 256-vector backfill batch (one transaction, fsync): %.1f ms (mean of %lld)\n\n",
                  since(tc) * 1e3 / double(std::max<int64_t>(1, batches)), static_cast<long long>(batches));
      mg.reset();
      fs::remove_all(mdir);
    }
  }

  if (has("ann") || has("ivf") || has("hnsw")) {
    g->search("old", 1, q.data(), d, so);
    const auto t0 = Clock::now();
    const auto exact = g->search("old", nq, q.data(), d, so);
    const double exact_s = since(t0);
    std::printf("| approximate, n = %lld | build s | recall@10 | queries/s | speed-up over exact |\n|---|---|---|---|---|\n",
                static_cast<long long>(n));
    std::printf("| exact (flat) | | 1.000 | %.0f | 1.0× |\n", double(nq) / exact_s);
    auto recall = [&](const gallery::SearchResult& r) {
      int64_t hit = 0;
      for (int64_t i = 0; i < nq; ++i)
        for (int64_t j = 0; j < 10; ++j)
          hit += std::count(r.ids.begin() + i * 10, r.ids.begin() + (i + 1) * 10, exact.ids[i * 10 + j]);
      return double(hit) / double(nq * 10);
    };
    for (const std::string type : {"ivf", "hnsw"}) {
      if (!has("ann") && !has(type.c_str())) continue;
      gallery::SearchOptions a = so;
      a.index = type;
      const auto tb = Clock::now();
      g->search("old", 1, q.data(), d, a);  // builds (or loads) the index
      const double build = since(tb);
      const std::vector<int64_t> params = type == "ivf" ? std::vector<int64_t>{8, 32, 128} : std::vector<int64_t>{32, 64, 128};
      for (int64_t p : params) {
        (type == "ivf" ? a.ann.nprobe : a.ann.ef_search) = p;
        const auto ts = Clock::now();
        const auto r = g->search("old", nq, q.data(), d, a);
        const double s = since(ts);
        std::printf("| %s %s %lld | %s | %.3f | %.0f | %.1f× |\n", type.c_str(), type == "ivf" ? "nprobe" : "efSearch",
                    static_cast<long long>(p), p == params.front() ? std::to_string(int(build)).c_str() : "",
                    recall(r), double(nq) / s, exact_s / s);
      }
    }
    std::printf("\n");
  }

  if (has("rss")) {
    g.reset();
    // A fresh process per measurement (exec, not fork: OpenMP is not fork-safe once its
    // threads exist), so VmHWM is that process's own.
    for (const std::string index : {"flat", "ivf"}) {
      std::fflush(stdout);
      const pid_t pid = ::fork();
      if (pid == 0) {
        ::execl("/proc/self/exe", "bench_gallery", std::to_string(n).c_str(), ("rss-child-" + index).c_str(),
                std::to_string(d).c_str(), std::to_string(nq).c_str(), dir.c_str(), static_cast<char*>(nullptr));
        std::_Exit(127);
      }
      int st = 0;
      ::waitpid(pid, &st, 0);
    }
    std::printf("gallery directory: %.0f MiB (database + index caches); vectors alone %.0f MiB\n",
                double(dir_bytes(dir)) / (1 << 20), double(n * d * 4) / (1 << 20));
  }
  return 0;
}

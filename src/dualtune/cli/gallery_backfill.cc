// dualtune gallery backfill: re-embed the gallery with the rolling-out model, in the
// planned order, batch by batch (one transaction each), with a progress bar; stops after
// --max-items / --max-seconds or on SIGTERM/SIGINT at a batch boundary and resumes on
// the next run. --nproc N (or the torchrun variables) spreads the work over processes:
// on a PostgreSQL gallery every rank, on any machine, claims batches from the store
// under a lease and commits them itself (Gallery::backfill_claimed); on an SQLite
// gallery rank 0 is the only writer and the others stream vectors to it over TCP
// (gallery/distributed_backfill.h).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "dualtune/cli/gallery_common.h"
#include "dualtune/cli/subprocess.h"
#include "dualtune/engine/settings.h"
#include "dualtune/engine/torch_image_embedder.h"
#include "dualtune/gallery/distributed_backfill.h"
#include "dualtune/gallery/pg.h"
#include "dualtune/util/error.h"

namespace dualtune::cli {
namespace {

std::atomic<bool> g_stop{false};
std::atomic<int> g_signal{0};

void on_signal(int sig) {
  g_signal.store(sig);
  g_stop.store(true);
}

std::string duration(double s) {
  char buf[32];
  if (s < 90) std::snprintf(buf, sizeof buf, "%.0f s", s);
  else if (s < 5400) std::snprintf(buf, sizeof buf, "%.1f min", s / 60);
  else std::snprintf(buf, sizeof buf, "%.1f h", s / 3600);
  return buf;
}

/// A progress bar on a terminal, a line every 10 s otherwise.
class ProgressPrinter {
 public:
  explicit ProgressPrinter(bool quiet) : quiet_(quiet), tty_(::isatty(2)) {}
  void operator()(const gallery::BackfillProgress& p) {
    if (quiet_) return;
    const auto now = std::chrono::steady_clock::now();
    const int64_t handled = p.done + p.failed;
    const bool last = handled >= p.planned;
    if (!tty_ && !last && p.this_run > 0 && now - last_ < std::chrono::seconds(10)) return;
    last_ = now;
    const double frac = p.planned > 0 ? double(handled) / double(p.planned) : 1.0;
    char bar[31];
    const int fill = static_cast<int>(frac * 30);
    for (int i = 0; i < 30; ++i) bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
    bar[30] = 0;
    std::fprintf(stderr, "%s[%s] %lld/%lld (%.1f%%) %.0f items/s, ETA %s, %lld failed%s", tty_ ? "\r" : "", bar,
                 static_cast<long long>(handled), static_cast<long long>(p.planned), 100 * frac, p.items_per_second,
                 p.items_per_second > 0 ? duration(p.eta_seconds).c_str() : "?", static_cast<long long>(p.failed),
                 tty_ ? "   " : "\n");
    std::fflush(stderr);
  }
  void finish() {
    if (!quiet_ && tty_) std::fprintf(stderr, "\n");
  }

 private:
  bool quiet_, tty_;
  std::chrono::steady_clock::time_point last_{};
};

struct Opts {
  std::string dir;
  gallery::BackfillOptions bf;
  DataOptions data;
  int nproc = 0, threads = 0;
  bool quiet = false;
  gallery::ClaimOptions claim;
};

/// The environment of a local rank started by --nproc, with the gallery's password (taken
/// off its command line) as PGPASSWORD when the URL had one.
std::vector<std::string> child_environment(int rank, int world, int port, const std::string& password) {
  auto env = local_rank_environment(rank, world, port);
  if (!password.empty()) {
    env.erase(std::remove_if(env.begin(), env.end(), [](const std::string& kv) { return kv.rfind("PGPASSWORD=", 0) == 0; }),
              env.end());
    env.push_back("PGPASSWORD=" + password);
  }
  return env;
}

void print_report(const std::string& who, const gallery::ModelInfo& m, const gallery::BackfillReport& rep) {
  for (const auto& [key, err] : rep.failures) std::fprintf(stderr, "skipped %s: %s\n", key.c_str(), err.c_str());
  std::printf("%sbackfill of %s: %lld embedded, %lld skipped (bad image) in %s (%.0f items/s); %lld remaining%s\n",
              who.c_str(), m.name.c_str(), static_cast<long long>(rep.embedded), static_cast<long long>(rep.failed),
              duration(rep.seconds).c_str(), rep.seconds > 0 ? double(rep.embedded + rep.failed) / rep.seconds : 0.0,
              static_cast<long long>(rep.remaining),
              rep.finished      ? " (done: `gallery retire` the old model when every client queries the new one)"
              : rep.rolled_back ? " (stopped: the model was rolled back; its embeddings are kept for a later rollout)"
                                : " (run the same command to continue)");
  std::fflush(stdout);
}

/// A PostgreSQL gallery: every rank claims batches and commits them (store.h). --nproc
/// starts ranks 1..N-1 here with the URL's password in their environment, never on their
/// command line (ps shows it to every user of the machine).
void run_claimed(Opts& o, gallery::BackfillRanks ranks) {
  auto gal = open_gallery(o.dir);
  const gallery::ModelInfo m = o.bf.model.empty() ? gal->target_model() : gal->model(o.bf.model);
  const std::string uuid = gal->status().uuid;
  std::vector<pid_t> children;
  if (o.nproc > 1) {
    DT_CHECK(ranks.world == 1, "--nproc starts its own ranks: expected RANK/WORLD_SIZE unset, found them set");
    ranks.world = o.nproc;
    const int cores = std::max(1u, std::thread::hardware_concurrency());
    const int threads = o.threads > 0 ? o.threads : std::max(1, cores / o.nproc);
    std::string password;
    const std::string bare = gallery::pg::strip_password(o.dir, &password);
    char lease[32];
    std::snprintf(lease, sizeof lease, "%g", o.claim.lease_seconds);
    for (int r = 1; r < o.nproc; ++r) {
      std::vector<std::string> args{"dualtune", "gallery", "backfill", bare, "--model", m.name, "--lease", lease,
                                    "--gallery-uuid", uuid, "--threads", std::to_string(threads), "--workers",
                                    std::to_string(o.data.workers), "--quiet"};
      if (!o.data.config.empty()) args.insert(args.end(), {"--data-config", o.data.config});
      if (o.bf.max_items > 0) args.insert(args.end(), {"--max-items", std::to_string(o.bf.max_items)});
      if (o.bf.max_seconds > 0) args.insert(args.end(), {"--max-seconds", std::to_string(o.bf.max_seconds)});
      children.push_back(spawn_self(args, child_environment(r, o.nproc, 0, password)));
    }
    o.threads = threads;
  } else if (ranks.world > 1 && o.threads == 0) {
    const int local = std::max(1, std::atoi(std::getenv("LOCAL_WORLD_SIZE") ? std::getenv("LOCAL_WORLD_SIZE") : "1"));
    o.threads = std::max(1, static_cast<int>(std::max(1u, std::thread::hardware_concurrency())) / local);
  }
  engine::set_threads(o.threads);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  const int rank = ranks.rank;
  if (!o.quiet && rank == 0)
    std::fprintf(stderr, "gallery %s (uuid %s): %d rank(s) claim batches with a lease of %g s\n", gal->dir().c_str(),
                 uuid.c_str(), ranks.world, o.claim.lease_seconds);
  gallery::ClaimOptions co = o.claim;
  co.log = [rank](const std::string& s) { std::fprintf(stderr, "rank %d: %s\n", rank, s.c_str()); };
  o.bf.rank = rank;
  o.bf.world = ranks.world;
  auto emb = gallery_embedder(m, o.data);
  ProgressPrinter printer(o.quiet || rank > 0);
  gallery::BackfillReport rep;
  std::string failed_here;
  try {
    rep = gal->backfill_claimed(o.bf, co, *emb, std::ref(printer), &g_stop);
  } catch (const std::exception& e) {
    if (children.empty()) throw;
    failed_here = e.what();  // still reap the children below
    g_stop.store(true);
  }
  printer.finish();
  std::vector<std::string> failures;
  for (pid_t pid : children) {
    if (!failed_here.empty()) ::kill(pid, SIGTERM);
    int st = 0;
    wait_child(pid, &st);
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) failures.push_back("worker process " + std::to_string(pid) + " " + describe_status(st));
  }
  if (!failed_here.empty()) DT_THROW(failed_here);
  if (!children.empty()) {  // the ranks' last commits may follow rank 0's count
    const auto p = gal->backfill_progress(m.name);
    rep.remaining = p.planned - p.done - p.failed;
    rep.finished = rep.remaining == 0;
  }
  print_report(ranks.world > 1 ? "rank " + std::to_string(rank) + ": " : "", m, rep);
  if (rep.remaining > 0 && !failures.empty()) {
    std::string all;
    for (const auto& f : failures) all += "; " + f;
    DT_THROW("gallery backfill: ", rep.remaining, " items remain because worker ranks did not finish", all,
             " (their batches come back after the lease: rerun to resume)");
  }
  if (g_signal.load() != 0) {
    gal.reset();
    std::printf("stopped by signal %d at a batch boundary; nothing is lost\n", g_signal.load());
    std::fflush(stdout);
    std::_Exit(128 + g_signal.load());
  }
}

}  // namespace

void add_backfill_command(CLI::App& gallery) {
  auto o = std::make_shared<Opts>();
  auto* c = gallery.add_subcommand("backfill", "Re-embed gallery items with the rolling-out model from their images, "
                                               "in the planned order, one transaction per batch; resumable");
  c->add_option("dir", o->dir, "gallery: a directory, or a postgresql://USER@HOST:PORT/DB URL")->required();
  c->add_option("--model,-m", o->bf.model, "the rolling-out model (default: the one rolling out)");
  c->add_option("--order", o->bf.order, "random | uncertainty (default: uncertainty when `gallery calibrate` fitted "
                                        "its predictor, else random); fixed when the plan is made")
      ->check(CLI::IsMember({"random", "uncertainty"}));
  c->add_option("--seed", o->bf.seed, "seed of the random order");
  c->add_option("--batch", o->bf.batch_size, "items per batch (= per transaction); fixed when the plan is made")
      ->check(CLI::PositiveNumber);
  c->add_option("--max-items", o->bf.max_items, "stop after the batch that reaches N items (0 = all)")
      ->check(CLI::NonNegativeNumber);
  c->add_option("--max-seconds", o->bf.max_seconds, "stop at the first batch boundary after S seconds (0 = no limit)")
      ->check(CLI::NonNegativeNumber);
  c->add_flag("--replan", o->bf.replan, "re-plan the pending items with --order");
  c->add_flag("--retry-failed", o->bf.retry_failed, "try again the items whose image was missing or corrupt");
  c->add_option("--nproc", o->nproc, "embed with N processes on this machine (PostgreSQL: each claims batches and "
                                     "commits them; SQLite: rank 0 writes); for several machines set RANK, WORLD_SIZE "
                                     "(SQLite also MASTER_ADDR, MASTER_PORT) instead (docs/GALLERY.md)")
      ->check(CLI::Range(1, 256));
  c->add_option("--lease", o->claim.lease_seconds, "PostgreSQL galleries: seconds a worker holds a claimed batch, renewed "
                                                   "every third of it while the worker embeds (up to 10 leases); a worker that dies leaves "
                                                   "its batch to the others this long after its last renewal (default 60)")
      ->check(CLI::PositiveNumber);
  c->add_option("--gallery-uuid", o->claim.gallery_uuid, "PostgreSQL galleries: refuse to work unless the gallery has this "
                                                         "uuid (rank 0 prints it; guards workers against a wrong URL)");
  c->add_option("--threads", o->threads, "libtorch threads per process (0 = cores / processes)");
  c->add_option("--workers", o->data.workers, "image decoding threads per process");
  c->add_option("--data-config", o->data.config, "config whose data section gives a TorchScript model's input transform");
  c->add_flag("--quiet,-q", o->quiet, "no progress bar");
  c->callback([o] {
    const bool claimed = gallery::Store::is_url(o->dir);
    gallery::BackfillRanks ranks = gallery::BackfillRanks::from_env(!claimed);
    if (claimed) return run_claimed(*o, ranks);
    std::vector<pid_t> children;
    if (o->nproc > 1) {
      DT_CHECK(ranks.world == 1, "--nproc starts its own ranks: expected RANK/WORLD_SIZE unset, found them set");
      ranks.world = o->nproc;
      ranks.master_port = free_local_port();
      const int cores = std::max(1u, std::thread::hardware_concurrency());
      const int threads = o->threads > 0 ? o->threads : std::max(1, cores / o->nproc);
      for (int r = 1; r < o->nproc; ++r) {
        std::vector<std::string> args{"dualtune", "gallery", "backfill", o->dir, "--threads", std::to_string(threads),
                                      "--workers", std::to_string(o->data.workers), "--quiet"};
        if (!o->data.config.empty()) args.insert(args.end(), {"--data-config", o->data.config});
        children.push_back(spawn_self(args, local_rank_environment(r, o->nproc, ranks.master_port)));
      }
      o->threads = threads;
    } else if (ranks.world > 1 && o->threads == 0) {
      const int local = std::max(1, std::atoi(std::getenv("LOCAL_WORLD_SIZE") ? std::getenv("LOCAL_WORLD_SIZE") : "1"));
      o->threads = std::max(1, static_cast<int>(std::max(1u, std::thread::hardware_concurrency())) / local);
    }
    engine::set_threads(o->threads);
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);

    if (ranks.rank > 0) {  // a worker: no database, only the model and the images
      gallery::backfill_worker(ranks, [&](const std::string& path) {
        gallery::ModelInfo m;
        m.name = "rank " + std::to_string(ranks.rank);
        m.path = path;
        return gallery_embedder(m, o->data);
      }, &g_stop);
      return;
    }
    auto gal = open_gallery(o->dir);
    const gallery::ModelInfo m = o->bf.model.empty() ? gal->target_model() : gal->model(o->bf.model);
    auto emb = gallery_embedder(m, o->data);
    std::unique_ptr<gallery::TcpWorkers> workers;
    if (ranks.world > 1) workers = std::make_unique<gallery::TcpWorkers>(ranks);
    ProgressPrinter printer(o->quiet);
    const auto rep = gal->backfill(o->bf, *emb, std::ref(printer), &g_stop, workers.get());
    printer.finish();
    std::vector<std::string> failures;
    if (workers) {
      failures = workers->failures();
      workers.reset();  // closes the connections: every worker ends
    }
    for (pid_t pid : children) {
      int st = 0;
      wait_child(pid, &st);
      if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0) && rep.remaining > 0)
        failures.push_back("worker process " + std::to_string(pid) + " " + describe_status(st));
    }
    print_report("", m, rep);
    if (rep.remaining > 0 && !failures.empty()) {
      std::string all;
      for (const auto& f : failures) all += "; " + f;
      DT_THROW("gallery backfill: ", rep.remaining, " items remain because worker ranks did not finish", all,
               " (their batches stay pending: rerun to resume)");
    }
    if (g_signal.load() != 0) {
      gal.reset();
      std::printf("stopped by signal %d at a batch boundary; nothing is lost\n", g_signal.load());
      std::fflush(stdout);
      std::_Exit(128 + g_signal.load());
    }
  });
}

}  // namespace dualtune::cli

// dualtune serve GALLERY_DIR: the gallery as an HTTP service (JSON API, docs/API.md) and
// the web page on top of it. Loopback only unless --host says otherwise; write routes
// need the bearer token of --token-file. SIGTERM / SIGINT: in-flight requests finish, a
// running backfill stops at its batch boundary (and resumes at the next start), the
// index caches are written, exit 0.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "dualtune/cli/commands.h"
#include "dualtune/cli/gallery_common.h"
#include "dualtune/serve/service.h"
#include "dualtune/serve/token.h"
#include "dualtune/util/error.h"

namespace dualtune::cli {
namespace {

struct ServeOptions {
  std::string dir, host = "127.0.0.1", token_file, report, curve, shard;
  int64_t refresh_ms = serve::ServiceOptions{}.refresh_ms;
  int port = 8080;
  int threads = 8;
  int backfill_nice = serve::ServiceOptions{}.backfill_nice;
  serve::Limits limits;
  DataOptions data;
  bool quiet = false;
};

std::atomic<int> g_stop_signal{0};
extern "C" void on_stop_signal(int sig) { g_stop_signal.store(sig); }

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

void run_serve(const ServeOptions& o) {
  serve::ServiceOptions so;
  if (!o.token_file.empty()) so.token = serve::read_token_file(o.token_file);
  so.report_dir = o.report;
  so.curve_file = o.curve;
  so.limits = o.limits;
  so.threads = o.threads;
  so.backfill_nice = o.backfill_nice;
  if (!o.shard.empty()) so.shard = gallery::Shard::parse(o.shard);
  so.refresh_ms = o.refresh_ms;
  if (!o.quiet) so.log = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
  auto gallery = open_gallery(o.dir);
  const DataOptions data = o.data;
  auto embedders = [data](const gallery::ModelInfo& m) { return gallery_embedder(m, data); };

  // The handler only stores the signal (whichever thread the kernel picks: threads the
  // libraries started before this point do not block it); a waiting thread sees it and
  // asks the service to stop, so no service code runs in a signal handler.
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a client that hangs up mid-answer is its own problem

  serve::use_single_threaded_blas();
  serve::Service service(*gallery, embedders, so);
  const int port = service.bind(o.host, o.port);
  const auto st = gallery->status();
  std::printf("dualtune serve: http://%s:%d/ (gallery %s, %lld items%s; write routes %s)\n",
              o.host.find(':') != std::string::npos ? ("[" + o.host + "]").c_str() : o.host.c_str(), port, gallery->dir().c_str(),
              static_cast<long long>(st.items), so.shard.all() ? "" : (", searching shard " + so.shard.str()).c_str(),
              so.token.empty() ? "disabled: no --token-file" : "need the bearer token");
  if (!is_loopback(o.host))
    std::printf("warning: listening on %s, not loopback: every read route (search, thumbnails, status) is open to "
                "whoever reaches this address\n", o.host.c_str());
  std::fflush(stdout);

  std::atomic<bool> done{false};
  std::thread waiter([&] {
    while (!done.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      const int sig = g_stop_signal.load();
      if (sig == SIGTERM || sig == SIGINT) {
        std::fprintf(stderr, "dualtune serve: %s: stopping (in-flight requests finish, a running backfill stops at "
                             "its batch boundary)\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        service.shutdown();
        return;
      }
    }
  });
  service.run();
  done = true;
  waiter.join();
  const auto bf = gallery->status().backfill;
  std::printf("dualtune serve: stopped");
  if (bf.planned > 0)
    std::printf("; backfill of '%s': %lld of %lld items done%s", bf.model.c_str(), static_cast<long long>(bf.done),
                static_cast<long long>(bf.planned), bf.done + bf.failed < bf.planned ? " (resumes at the next start)" : "");
  std::printf("\n");
}

}  // namespace

void register_serve_command(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  auto* c = app.add_subcommand("serve", "Serve a gallery over HTTP: a JSON API (search, status, backfill, add, "
                                        "report; docs/API.md) and a web page at /");
  c->add_option("dir", o->dir, "gallery: a directory, or a postgresql://USER@HOST:PORT/DB URL")->required();
  c->add_option("--host", o->host, "address to listen on (loopback by default; 0.0.0.0 = every interface)")
      ->capture_default_str();
  c->add_option("--port", o->port, "port (0 = any free port; the chosen one is printed)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  c->add_option("--token-file", o->token_file, "file holding the bearer token of the write routes (add, backfill, "
                                               "retire); without it they answer 403")
      ->check(CLI::ExistingFile);
  c->add_option("--report", o->report, "directory of the models' compatibility report (report.json + plots/; "
                                       "default DIR/report)");
  c->add_option("--curve", o->curve, "backfill curve file (curve.json of `gallery curve` or the demo; default "
                                     "DIR/curve/curve.json, else REPORT/transition/curve.json)");
  c->add_option("--threads", o->threads, "HTTP worker threads")->check(CLI::Range(1, 256))->capture_default_str();
  c->add_option("--shard", o->shard, "I/N: hold and search only the items whose id mod N is I (one of N search "
                                     "processes behind `dualtune proxy`; docs/GALLERY.md)");
  c->add_option("--refresh-ms", o->refresh_ms, "PostgreSQL: a commit is searchable once its announcement (NOTIFY) "
                                               "arrives and at the latest this long after it; 0 = ask the server at "
                                               "every search")
      ->check(CLI::Range(int64_t(0), int64_t(86400000)))
      ->capture_default_str();
  c->add_option("--backfill-nice", o->backfill_nice, "niceness a running backfill adds to the service's (0-19, "
                                                     "capped at 19): searches get the cores first; 0 = equal shares")
      ->check(CLI::Range(0, 19))
      ->capture_default_str();
  c->add_option("--max-k", o->limits.max_k, "largest k of a search")->check(CLI::PositiveNumber)->capture_default_str();
  c->add_option("--max-queries", o->limits.max_queries, "query vectors per search request")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  c->add_option("--max-body", o->limits.max_body_bytes, "largest JSON request body, bytes")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  c->add_option("--max-image", o->limits.max_image_bytes, "largest uploaded image, bytes")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  c->add_option("--max-batch", o->limits.max_batch_size, "largest backfill batch size")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  c->add_option("--workers", o->data.workers, "image decoding threads per embedding call")->capture_default_str();
  c->add_option("--data-config", o->data.config, "config whose data section gives a TorchScript model's input transform");
  c->add_flag("--quiet,-q", o->quiet, "no request log on stderr");
  c->callback([o] { run_serve(*o); });
}

}  // namespace dualtune::cli

// dualtune proxy --shards URL,URL,...: one search endpoint over the shard processes of a
// gallery (`dualtune serve GALLERY --shard I/N`), merging their top-k lists exactly
// (serve/shard_proxy.h). SIGTERM / SIGINT: in-flight requests finish, exit 0.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "dualtune/cli/commands.h"
#include "dualtune/serve/shard_proxy.h"
#include "dualtune/util/error.h"

namespace dualtune::cli {
namespace {

struct ProxyCliOptions {
  std::vector<std::string> shards;
  std::string host = "127.0.0.1";
  int port = 8080;
  int threads = 8;
  int timeout_ms = 30000;
  bool quiet = false;
};

std::atomic<int> g_proxy_signal{0};
extern "C" void on_proxy_signal(int sig) { g_proxy_signal.store(sig); }

void run_proxy(const ProxyCliOptions& o) {
  serve::ProxyOptions po;
  po.shards = o.shards;
  po.threads = o.threads;
  po.timeout_ms = o.timeout_ms;
  if (!o.quiet) po.log = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
  struct sigaction sa {};
  sa.sa_handler = on_proxy_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  serve::ShardProxy proxy(po);
  const int port = proxy.bind(o.host, o.port);
  std::printf("dualtune proxy: http://%s:%d/ over %zu shards\n", o.host.c_str(), port, o.shards.size());
  std::fflush(stdout);
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    while (!done.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (g_proxy_signal.load() != 0) {
        proxy.shutdown();
        return;
      }
    }
  });
  proxy.run();
  done = true;
  waiter.join();
  std::printf("dualtune proxy: stopped\n");
}

}  // namespace

void register_proxy_command(CLI::App& app) {
  auto o = std::make_shared<ProxyCliOptions>();
  auto* c = app.add_subcommand("proxy", "Search over the shards of a gallery: POST /api/search fanned out to every "
                                        "`dualtune serve --shard I/N` and their top-k merged exactly (docs/GALLERY.md)");
  c->add_option("--shards", o->shards, "the shards' URLs, http://HOST:PORT, comma-separated (any order: each says "
                                       "which shard it serves)")
      ->required()
      ->delimiter(',');
  c->add_option("--host", o->host, "address to listen on")->capture_default_str();
  c->add_option("--port", o->port, "port (0 = any free port; the chosen one is printed)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  c->add_option("--threads", o->threads, "HTTP worker threads")->check(CLI::Range(1, 256))->capture_default_str();
  c->add_option("--timeout-ms", o->timeout_ms, "longest wait for a shard's answer")
      ->check(CLI::Range(1, 600000))
      ->capture_default_str();
  c->add_flag("--quiet,-q", o->quiet, "no request log on stderr");
  c->callback([o] { run_proxy(*o); });
}

}  // namespace dualtune::cli

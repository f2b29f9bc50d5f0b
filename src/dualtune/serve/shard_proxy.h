#pragma once
// `dualtune proxy`: one search endpoint over the shards of a gallery (docs/GALLERY.md,
// "Sharded search"). Each shard is a `dualtune serve GALLERY --shard i/n` that holds and
// searches only the items whose id mod n == i (gallery::Shard); the proxy sends every
// POST /api/search to all shards at once and merges their top-k lists into one, answered
// in the JSON of /api/search (docs/API.md). The pattern of FAISS's IndexShards.
//
// Exactness: an item's merge key depends only on the item and the query for the raw and
// calibrated merges (key = score, or a_v·score + b_v of the version v that scores it, and
// which version scores an item depends only on the item), so the k best of the union of
// the shards' k best lists, by key descending and id ascending (topk.h's tie rule), are
// exactly the unsharded search's k best, ids and scores. The rank merge (ranks within a
// version over the whole gallery) and the aligned merge (fitted on a sample of the
// gallery's items) depend on every shard's items: the proxy refuses them (400) rather
// than answer a ranking that differs from the unsharded one. Approximate indexes (ivf,
// hnsw) are merged the same way and stay approximate.
//
// Failures: a shard that cannot be reached, or answers 503, makes the answer 503 naming
// the shard (a partial top-k would be silently wrong); a shard's 4xx is passed through
// (the same request fails the same way on every shard). At start the proxy asks every
// shard's /api/health: they must serve one gallery (same uuid) as shards 0..n-1 of n,
// each once, with n the number of shards given.
//
// Routes: POST /api/search, GET /api/health (the proxy's and each shard's), GET
// /api/status (shard 0's: status is about the whole gallery). No write routes, no page.
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace dualtune::serve {

struct ProxyOptions {
  std::vector<std::string> shards;  ///< http://HOST:PORT of each shard, any order
  int threads = 8;                  ///< HTTP worker threads
  int timeout_ms = 30000;           ///< a shard's answer (connect, read)
  /// One line per request and per event; default: none.
  std::function<void(const std::string&)> log;
};

class ShardProxy {
 public:
  /// Checks the shards (above); throws dualtune::Error naming the shard and what was
  /// expected when one is unreachable or they do not form shards 0..n-1 of one gallery.
  explicit ShardProxy(ProxyOptions options);
  ~ShardProxy();
  /// Binds host:port (0: any free port) and returns the port.
  int bind(const std::string& host, int port);
  /// Serves until shutdown(); requests in flight are answered.
  void run();
  /// Callable from any thread, before or during run(), more than once.
  void shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dualtune::serve

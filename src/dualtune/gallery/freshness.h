#pragma once
// When a reader must ask the store whether anything changed (Gallery::refresh), for
// stores that announce their commits (Store::change_feed, PostgreSQL LISTEN/NOTIFY).
//
// Without it a search asks data_version() every time: a local read on SQLite, but one
// round trip to the server per search on PostgreSQL. With it a search asks only when
//   (a) an announcement arrived since it last asked (a listener thread waits on the
//       feed and sets a flag), or
//   (b) refresh_ms passed since it last asked (the fallback: announcements are lost
//       while the feed's connection is down, until a new one listens).
// So a search that starts refresh_ms after a commit always sees it, and with the feed up
// one that starts after the announcement reached this process (well under a millisecond
// on loopback, a network round trip otherwise). The flag is cleared before the store is
// asked, so an announcement that arrives while asking makes the next search ask again.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "dualtune/gallery/store.h"

namespace dualtune::gallery::detail {

class Freshness {
 public:
  using OpenFeed = std::function<std::unique_ptr<Store::ChangeFeed>()>;
  /// open_feed makes a new feed (null: the store announces nothing; then due() is
  /// always true and no thread runs). It is called again after a lost connection.
  Freshness(int64_t refresh_ms, OpenFeed open_feed);
  ~Freshness();
  Freshness(const Freshness&) = delete;
  Freshness& operator=(const Freshness&) = delete;

  /// Whether the caller must ask the store now (and the clock of (b) restarts).
  bool due();
  /// The ask failed (server unreachable): the next due() is true.
  void mark_stale() { stale_.store(true); }
  /// A listener thread runs (the store announces its commits).
  bool listening() const { return thread_.joinable(); }
  /// Announcements received so far (tests observe the mechanism with it).
  int64_t announcements() const { return announcements_.load(); }

 private:
  void loop();
  const int64_t refresh_ns_;
  OpenFeed open_feed_;
  std::unique_ptr<Store::ChangeFeed> feed_;  ///< the thread's
  std::atomic<bool> stale_{true};
  std::atomic<int64_t> last_ask_ns_{0};
  std::atomic<int64_t> announcements_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace dualtune::gallery::detail

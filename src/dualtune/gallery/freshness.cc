#include "dualtune/gallery/freshness.h"

#include <algorithm>
#include <chrono>

namespace dualtune::gallery::detail {
namespace {

using Clock = std::chrono::steady_clock;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

/// How long one wait on the feed lasts: the longest a destructor waits for the thread.
constexpr int kWaitMs = 100;

}  // namespace

Freshness::Freshness(int64_t refresh_ms, OpenFeed open_feed)
    : refresh_ns_(std::max<int64_t>(0, refresh_ms) * 1000000), open_feed_(std::move(open_feed)) {
  try {
    feed_ = open_feed_();
    if (!feed_) return;  // the store announces nothing: ask at every search
  } catch (const std::exception&) {
    // The server went away since the store opened: the thread keeps trying.
  }
  thread_ = std::thread([this] { loop(); });
}

Freshness::~Freshness() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool Freshness::due() {
  if (!thread_.joinable() || refresh_ns_ == 0) return true;
  const int64_t now = now_ns();
  if (!stale_.exchange(false) && now - last_ask_ns_.load() < refresh_ns_) return false;
  last_ask_ns_.store(now);
  return true;
}

void Freshness::loop() {
  // Reconnection attempts at most every refresh_ms (at least every second).
  const auto retry = std::chrono::milliseconds(std::clamp<int64_t>(refresh_ns_ / 1000000, kWaitMs, 1000));
  for (;;) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (stop_) return;
    }
    if (!feed_) {
      try {
        feed_ = open_feed_();
        stale_.store(true);  // announcements made while no feed listened are lost
      } catch (const std::exception&) {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait_for(lk, retry, [this] { return stop_; });
        continue;
      }
    }
    try {
      if (feed_->wait(kWaitMs)) {
        announcements_.fetch_add(1);
        stale_.store(true);
      }
    } catch (const std::exception&) {
      feed_.reset();
      stale_.store(true);
    }
  }
}

}  // namespace dualtune::gallery::detail

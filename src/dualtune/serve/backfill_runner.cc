#include "dualtune/serve/backfill_runner.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "dualtune/serve/http_error.h"

namespace dualtune::serve {

BackfillRunner::BackfillRunner(gallery::Gallery& gallery, EmbedderFactory factory, int nice)
    : gallery_(gallery), factory_(std::move(factory)), nice_(nice) {}

BackfillRunner::~BackfillRunner() {
  stop_and_join();
}

void BackfillRunner::start(const gallery::BackfillOptions& options, const gallery::ModelInfo& m) {
  std::unique_lock<std::mutex> lk(mu_);
  HTTP_CHECK(!running_, 409, "a backfill of '", snap_.options.model, "' is already running (",
             snap_.progress.done, " of ", snap_.progress.planned, " items); expected it to end or a pause first");
  HTTP_CHECK(!m.path.empty(), 409, "model '", m.name, "' has no model file recorded (its embeddings were imported): "
             "it cannot embed images, so it cannot be backfilled");
  HTTP_CHECK(factory_, 409, "this server embeds no images (no model loader): it cannot backfill");
  auto& e = embedders_[m.name];
  if (!e) {
    // Loading a model takes a moment; no other start can run meanwhile (running_ is
    // false but mu_ is held), reads of the snapshot wait for it.
    try {
      auto made = factory_(m);
      gallery_.check_model(m.name, *made);
      e = std::move(made);
    } catch (const Error& err) {
      embedders_.erase(m.name);
      HTTP_THROW(500, "model '", m.name, "' (", m.path, ") cannot be used: ", err.what());
    }
  }
  if (thread_.joinable()) thread_.join();  // the previous run has ended (running_ is false)
  running_ = true;
  cancel_.store(false);
  snap_.state = "running";
  snap_.options = options;
  snap_.options.model = m.name;
  snap_.progress = gallery_.backfill_progress(m.name);
  snap_.progress.this_run = 0;
  snap_.error.clear();
  thread_ = std::thread(&BackfillRunner::run, this, snap_.options, e.get());
}

void BackfillRunner::run(gallery::BackfillOptions options, gallery::ImageEmbedder* embedder) {
  // On Linux niceness is per thread (PRIO_PROCESS with a thread id), inherited by the
  // threads this one starts; raising it needs no privilege. The thread ends with the run.
  // `nice_` is added to the thread's own niceness (a service started under `nice -n 10`
  // backfills at 17 with the default 7, not at 7, above its own searches).
  if (nice_ > 0) {
    const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
    errno = 0;
    const int current = ::getpriority(PRIO_PROCESS, tid);  // -1 is a valid niceness: errno tells
    if (errno == 0) ::setpriority(PRIO_PROCESS, tid, std::min(19, current + nice_));
  }
  gallery::BackfillReport rep;
  std::string error;
  try {
    rep = gallery_.backfill(options, *embedder, [this](const gallery::BackfillProgress& p) {
      std::lock_guard<std::mutex> lk(mu_);
      snap_.progress = p;
    }, &cancel_);
  } catch (const std::exception& e) {
    error = e.what();
  }
  std::lock_guard<std::mutex> lk(mu_);
  if (!error.empty()) {
    snap_.state = "failed";
    snap_.error = error;
  } else {
    snap_.has_report = true;
    snap_.report = rep;
    snap_.state = rep.finished ? "finished" : rep.rolled_back ? "rolled_back" : rep.cancelled ? "paused" : "stopped";
  }
  running_ = false;
  ended_.notify_all();
}

bool BackfillRunner::pause() {
  std::lock_guard<std::mutex> lk(mu_);
  if (!running_) return false;
  cancel_.store(true);
  snap_.state = "pausing";
  return true;
}

BackfillSnapshot BackfillRunner::snapshot() const {
  std::lock_guard<std::mutex> lk(mu_);
  return snap_;
}

void BackfillRunner::wait() {
  std::unique_lock<std::mutex> lk(mu_);
  ended_.wait(lk, [this] { return !running_; });
}

void BackfillRunner::stop_and_join() {
  pause();
  wait();
  std::lock_guard<std::mutex> lk(mu_);
  if (thread_.joinable()) thread_.join();
}

}  // namespace dualtune::serve

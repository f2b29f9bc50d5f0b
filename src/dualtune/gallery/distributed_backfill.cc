#include "dualtune/gallery/distributed_backfill.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "dualtune/util/env.h"
#include "dualtune/util/error.h"

namespace dualtune::gallery {
namespace {

using Clock = std::chrono::steady_clock;

enum Frame : uint32_t { kHello = 1, kWork = 2, kBatch = 3, kDone = 4, kError = 5 };

void send_all(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    DT_CHECK(w > 0, "connection lost while sending: ", std::strerror(errno));
    p += w;
    n -= static_cast<size_t>(w);
  }
}

/// False on a clean end of stream before the first byte; throws on a cut frame.
bool recv_all(int fd, void* data, size_t n) {
  char* p = static_cast<char*>(data);
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::recv(fd, p + got, n - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0 && got == 0) return false;
    DT_CHECK(r > 0, "connection lost while receiving: ", r == 0 ? "closed by the peer" : std::strerror(errno));
    got += static_cast<size_t>(r);
  }
  return true;
}

void send_frame(int fd, uint32_t type, const std::string& payload) {
  const uint64_t len = payload.size();
  send_all(fd, &type, 4);
  send_all(fd, &len, 8);
  send_all(fd, payload.data(), payload.size());
}

/// False when the peer closed the connection between frames.
bool recv_frame(int fd, uint32_t& type, std::string& payload) {
  if (!recv_all(fd, &type, 4)) return false;
  uint64_t len = 0;
  DT_CHECK(recv_all(fd, &len, 8), "connection closed inside a frame");
  DT_CHECK(len < (uint64_t(1) << 36), "frame of ", len, " bytes: not a dualtune backfill peer");
  payload.resize(len);
  DT_CHECK(len == 0 || recv_all(fd, payload.data(), len), "connection closed inside a frame");
  return true;
}

bool is_loopback(const std::string& addr) { return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1"; }

}  // namespace

BackfillRanks BackfillRanks::from_env(bool need_master) {
  BackfillRanks r;
  if (!std::getenv("RANK") && !std::getenv("WORLD_SIZE")) return r;
  r.rank = env_int("RANK", -1);
  r.world = env_int("WORLD_SIZE", -1);
  DT_CHECK(r.world >= 1 && r.rank >= 0 && r.rank < r.world, "backfill ranks: expected 0 <= RANK < WORLD_SIZE, found RANK ",
           r.rank, ", WORLD_SIZE ", r.world);
  r.master_addr = env_or("MASTER_ADDR", "127.0.0.1");
  r.master_port = env_int("MASTER_PORT", 0);
  DT_CHECK(!need_master || r.world == 1 || (r.master_port > 0 && r.master_port < 65536), "backfill ranks: expected MASTER_PORT in "
           "1..65535 for WORLD_SIZE ", r.world, ", found ", r.master_port);
  r.timeout_seconds = env_int("DUALTUNE_DIST_TIMEOUT", 60);
  return r;
}

// --- rank 0 --------------------------------------------------------------------------

struct TcpWorkers::Impl {
  BackfillRanks ranks;
  int listen_fd = -1;
  std::thread acceptor;
  std::vector<std::thread> readers;
  mutable std::mutex mu;
  std::condition_variable cv;
  std::map<int, int> socket_of;             ///< rank -> connected socket
  std::map<int, std::string> work_of;       ///< rank -> WORK payload not yet sent
  std::map<int, bool> finished;             ///< rank -> done or failed
  std::map<int, std::string> failure;       ///< rank -> what happened
  std::deque<EmbeddedBatch> queue;
  bool stopping = false;

  void fail(int rank, const std::string& what) {
    std::lock_guard<std::mutex> lk(mu);
    if (!finished[rank]) failure[rank] = what;
    finished[rank] = true;
    cv.notify_all();
  }

  void send_work_locked(int rank) {
    auto s = socket_of.find(rank);
    auto w = work_of.find(rank);
    if (s == socket_of.end() || w == work_of.end()) return;
    try {
      send_frame(s->second, kWork, w->second);
    } catch (const Error& e) {
      failure[rank] = e.what();
      finished[rank] = true;
    }
    work_of.erase(w);
  }

  void read_worker(int fd, int rank) {
    try {
      uint32_t type;
      std::string p;
      for (;;) {
        if (!recv_frame(fd, type, p)) {
          fail(rank, "closed the connection before finishing its share (did it crash?)");
          return;
        }
        if (type == kDone) {
          std::lock_guard<std::mutex> lk(mu);
          finished[rank] = true;
          cv.notify_all();
          return;
        }
        if (type == kError) {
          fail(rank, nlohmann::json::parse(p).value("error", std::string("error")));
          return;
        }
        DT_CHECK(type == kBatch, "unexpected frame type ", type);
        EmbeddedBatch eb;
        uint64_t hl = 0;
        DT_CHECK(p.size() >= 8, "batch frame too short");
        std::memcpy(&hl, p.data(), 8);
        DT_CHECK(8 + hl <= p.size(), "batch header overruns the frame");
        const auto h = nlohmann::json::parse(p.substr(8, hl));
        eb.index = h.at("index").get<int64_t>();
        const int64_t n = h.at("n").get<int64_t>(), d = h.at("dim").get<int64_t>();
        eb.errors = h.at("errors").get<std::vector<std::string>>();
        DT_CHECK(static_cast<int64_t>(eb.errors.size()) == n &&
                     p.size() == 8 + hl + static_cast<size_t>(n) * 8 + static_cast<size_t>(n * d) * 4,
                 "batch frame of ", p.size(), " bytes does not hold ", n, " items of dimension ", d);
        eb.item_ids.resize(static_cast<size_t>(n));
        eb.vectors.resize(static_cast<size_t>(n * d));
        std::memcpy(eb.item_ids.data(), p.data() + 8 + hl, static_cast<size_t>(n) * 8);
        std::memcpy(eb.vectors.data(), p.data() + 8 + hl + static_cast<size_t>(n) * 8, static_cast<size_t>(n * d) * 4);
        std::lock_guard<std::mutex> lk(mu);
        queue.push_back(std::move(eb));
        cv.notify_all();
      }
    } catch (const std::exception& e) {
      fail(rank, e.what());
    }
  }

  void accept_loop() {
    const auto deadline = Clock::now() + std::chrono::duration<double>(ranks.timeout_seconds);
    int expected = ranks.world - 1;
    while (expected > 0) {
      pollfd pfd{listen_fd, POLLIN, 0};
      const int rc = ::poll(&pfd, 1, 200);
      {
        std::lock_guard<std::mutex> lk(mu);
        if (stopping) return;
      }
      if (rc <= 0) {
        if (Clock::now() > deadline) {
          std::lock_guard<std::mutex> lk(mu);
          for (int r = 1; r < ranks.world; ++r)
            if (!socket_of.count(r) && !finished[r]) {
              failure[r] = "did not connect to " + ranks.master_addr + ":" + std::to_string(ranks.master_port) +
                           " within " + std::to_string(int(ranks.timeout_seconds)) + " s";
              finished[r] = true;
            }
          cv.notify_all();
          return;
        }
        continue;
      }
      const int fd = ::accept(listen_fd, nullptr, nullptr);
      if (fd < 0) continue;
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      uint32_t type = 0;
      std::string p;
      int rank = -1;
      try {
        if (recv_frame(fd, type, p) && type == kHello) rank = nlohmann::json::parse(p).value("rank", -1);
      } catch (...) {
      }
      std::lock_guard<std::mutex> lk(mu);
      if (rank < 1 || rank >= ranks.world || socket_of.count(rank)) {
        ::close(fd);  // not one of ours, or a rank twice
        continue;
      }
      socket_of[rank] = fd;
      --expected;
      send_work_locked(rank);
      readers.emplace_back([this, fd, rank] { read_worker(fd, rank); });
    }
  }
};

TcpWorkers::TcpWorkers(const BackfillRanks& ranks) : impl_(std::make_unique<Impl>()) {
  impl_->ranks = ranks;
  DT_CHECK(ranks.rank == 0 && ranks.world > 1, "backfill: TcpWorkers is rank 0's side of a world > 1");
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  DT_CHECK(fd >= 0, "backfill rank 0: cannot create a socket: ", std::strerror(errno));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(ranks.master_port));
  a.sin_addr.s_addr = htonl(is_loopback(ranks.master_addr) ? INADDR_LOOPBACK : INADDR_ANY);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, ranks.world) != 0) {
    const std::string err = std::strerror(errno);
    ::close(fd);
    DT_THROW("backfill rank 0: cannot listen on port ", ranks.master_port, " (MASTER_PORT): ", err);
  }
  impl_->listen_fd = fd;
  for (int r = 1; r < ranks.world; ++r) impl_->finished[r] = false;
  impl_->acceptor = std::thread([this] { impl_->accept_loop(); });
}

TcpWorkers::~TcpWorkers() {
  stop();
  if (impl_->acceptor.joinable()) impl_->acceptor.join();
  for (auto& t : impl_->readers) t.join();
  for (const auto& [r, fd] : impl_->socket_of) ::close(fd);
  if (impl_->listen_fd >= 0) ::close(impl_->listen_fd);
}

int TcpWorkers::world() const { return impl_->ranks.world; }

void TcpWorkers::assign(int rank, const std::vector<BackfillBatch>& share, const ModelInfo& model) {
  nlohmann::json batches = nlohmann::json::array();
  for (const auto& b : share) {
    nlohmann::json items = nlohmann::json::array();
    for (const auto& it : b.items) items.push_back({it.item_id, it.key, it.source});
    batches.push_back({{"index", b.index}, {"items", items}});
  }
  const std::string work =
      nlohmann::json{{"model", model.path}, {"fingerprint", model.config_hash}, {"dim", model.dim}, {"batches", batches}}
          .dump();
  std::lock_guard<std::mutex> lk(impl_->mu);
  impl_->work_of[rank] = work;
  impl_->send_work_locked(rank);
}

bool TcpWorkers::next(EmbeddedBatch& out, bool wait) {
  std::unique_lock<std::mutex> lk(impl_->mu);
  auto all_finished = [&] {
    for (const auto& [r, f] : impl_->finished)
      if (!f) return false;
    return true;
  };
  if (wait) impl_->cv.wait(lk, [&] { return !impl_->queue.empty() || all_finished() || impl_->stopping; });
  if (impl_->queue.empty()) return false;
  out = std::move(impl_->queue.front());
  impl_->queue.pop_front();
  return true;
}

void TcpWorkers::stop() {
  std::lock_guard<std::mutex> lk(impl_->mu);
  if (impl_->stopping) return;
  impl_->stopping = true;
  for (const auto& [r, fd] : impl_->socket_of) ::shutdown(fd, SHUT_RDWR);
  for (auto& [r, f] : impl_->finished) {
    if (!f && !impl_->failure.count(r)) impl_->failure[r] = "stopped before finishing its share (budget reached or cancelled)";
    f = true;
  }
  impl_->cv.notify_all();
}

std::vector<std::string> TcpWorkers::failures() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  std::vector<std::string> out;
  for (const auto& [r, what] : impl_->failure) out.push_back("rank " + std::to_string(r) + ": " + what);
  return out;
}

// --- workers ---------------------------------------------------------------------------

namespace {

int connect_to(const BackfillRanks& ranks) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(ranks.timeout_seconds);
  std::string last = "no attempt";
  for (;;) {
    addrinfo hints{}, *res = nullptr;
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    const int gai = ::getaddrinfo(ranks.master_addr.c_str(), std::to_string(ranks.master_port).c_str(), &hints, &res);
    if (gai == 0) {
      const int fd = ::socket(res->ai_family, res->ai_socktype, res->ai_protocol);
      if (fd >= 0 && ::connect(fd, res->ai_addr, res->ai_addrlen) == 0) {
        ::freeaddrinfo(res);
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        return fd;
      }
      last = std::strerror(errno);
      if (fd >= 0) ::close(fd);
      ::freeaddrinfo(res);
    } else {
      last = gai_strerror(gai);
    }
    DT_CHECK(Clock::now() < deadline, "backfill rank ", ranks.rank, ": cannot reach rank 0 at ", ranks.master_addr, ":",
             ranks.master_port, " within ", int(ranks.timeout_seconds), " s (", last, ")");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace

void backfill_worker(const BackfillRanks& ranks,
                     const std::function<std::unique_ptr<ImageEmbedder>(const std::string&)>& make_embedder,
                     const std::atomic<bool>* cancel) {
  DT_CHECK(ranks.rank > 0, "backfill_worker: rank 0 is the writer");
  const int fd = connect_to(ranks);
  struct Close {
    int fd;
    ~Close() { ::close(fd); }
  } close_fd{fd};
  send_frame(fd, kHello, nlohmann::json{{"rank", ranks.rank}}.dump());
  uint32_t type = 0;
  std::string p;
  if (!recv_frame(fd, type, p)) return;  // rank 0 stopped before handing out work
  DT_CHECK(type == kWork, "backfill rank ", ranks.rank, ": expected the work frame from rank 0, found type ", type);
  const auto work = nlohmann::json::parse(p);
  const std::string model = work.at("model").get<std::string>();
  std::unique_ptr<ImageEmbedder> emb;
  try {
    emb = make_embedder(model);
    const std::string want = work.at("fingerprint").get<std::string>();
    DT_CHECK(want.empty() || emb->fingerprint() == want, "model ", model, " on this machine has fingerprint ",
             emb->fingerprint(), ", the gallery recorded ", want, ": expected the same model file on every machine");
    DT_CHECK(emb->dim() == work.at("dim").get<int64_t>(), "model ", model, " embeds ", emb->dim(), ", the gallery expects ",
             work.at("dim").get<int64_t>());
  } catch (const Error& e) {
    try {
      send_frame(fd, kError, nlohmann::json{{"error", e.what()}}.dump());
    } catch (...) {
    }
    throw;
  }
  std::vector<std::vector<ImageRef>> batches;
  std::vector<int64_t> index;
  for (const auto& b : work.at("batches")) {
    index.push_back(b.at("index").get<int64_t>());
    batches.emplace_back();
    for (const auto& it : b.at("items"))
      batches.back().push_back({it.at(0).get<int64_t>(), it.at(1).get<std::string>(), it.at(2).get<std::string>()});
  }
  bool closed = false;
  emb->embed(batches, [&](EmbeddedBatch& eb) {
    const int64_t n = static_cast<int64_t>(eb.item_ids.size()), d = emb->dim();
    const std::string h =
        nlohmann::json{{"index", index.at(static_cast<size_t>(eb.index))}, {"n", n}, {"dim", d}, {"errors", eb.errors}}.dump();
    std::string payload(8, '\0');
    const uint64_t hl = h.size();
    std::memcpy(payload.data(), &hl, 8);
    payload += h;
    payload.append(reinterpret_cast<const char*>(eb.item_ids.data()), static_cast<size_t>(n) * 8);
    payload.append(reinterpret_cast<const char*>(eb.vectors.data()), static_cast<size_t>(n * d) * 4);
    try {
      send_frame(fd, kBatch, payload);
    } catch (const Error&) {
      closed = true;  // rank 0 closed the connection: it stopped the backfill
      return false;
    }
    return !(cancel && cancel->load());
  });
  if (!closed && !(cancel && cancel->load())) {
    try {
      send_frame(fd, kDone, "{}");
    } catch (const Error&) {
    }
  }
}

}  // namespace dualtune::gallery

// c10d (TCPStore + ProcessGroupGloo) behind dualtune's Distributed context; contracts in
// distributed.h. The c10d headers stay in this file (they need USE_C10D_GLOO and Gloo's).
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include "dualtune/engine/distributed.h"

#include <csignal>

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdlib>
#include <map>

#include "dualtune/util/env.h"
#include "dualtune/util/error.h"

namespace dualtune::engine {

struct Distributed::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
};

namespace {

bool is_loopback(const std::string& addr) {
  return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1";
}

// c10::Error::what() carries a C++ backtrace: keep the message only.
std::string message_of(const std::exception& e) {
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
  return e.what();
}

}  // namespace

Distributed::Distributed() = default;
Distributed::~Distributed() = default;
Distributed::Distributed(Distributed&&) noexcept = default;
Distributed& Distributed::operator=(Distributed&&) noexcept = default;

Distributed Distributed::from_env() {
  Distributed d;
  const std::string rank_s = env_or("RANK", ""), world_s = env_or("WORLD_SIZE", "");
  if (rank_s.empty() && world_s.empty()) return d;
  DT_CHECK(!rank_s.empty() && !world_s.empty(), "distributed: expected both RANK and WORLD_SIZE in the environment, "
           "found only ", rank_s.empty() ? "WORLD_SIZE" : "RANK");
  d.rank_ = env_int("RANK", 0);
  d.world_ = env_int("WORLD_SIZE", 1);
  DT_CHECK(d.world_ >= 1 && d.rank_ >= 0 && d.rank_ < d.world_,
           "distributed: expected 0 <= RANK < WORLD_SIZE, found RANK=", d.rank_, " WORLD_SIZE=", d.world_);
  const std::string addr = env_or("MASTER_ADDR", "127.0.0.1");
  d.local_rank_ = env_int("LOCAL_RANK", is_loopback(addr) ? d.rank_ : 0);
  d.local_world_ = env_int("LOCAL_WORLD_SIZE", is_loopback(addr) ? d.world_ : 1);
  DT_CHECK(d.local_world_ >= 1 && d.local_rank_ >= 0 && d.local_rank_ < d.local_world_,
           "distributed: expected 0 <= LOCAL_RANK < LOCAL_WORLD_SIZE, found LOCAL_RANK=", d.local_rank_,
           " LOCAL_WORLD_SIZE=", d.local_world_);
  const std::string timeout_s = env_or("DUALTUNE_DIST_TIMEOUT", "60");
  try {
    d.timeout_s_ = std::stod(timeout_s);
  } catch (...) {
    d.timeout_s_ = -1;
  }
  DT_CHECK(d.timeout_s_ > 0, "distributed: expected DUALTUNE_DIST_TIMEOUT > 0 seconds, found '", timeout_s, "'");
  if (d.world_ == 1) return d;
  // A peer that dies closes its sockets; writing to one must fail with EPIPE (an error
  // that names the collective) instead of killing this rank silently with SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);

  const int port = env_int("MASTER_PORT", -1);
  DT_CHECK(port > 0 && port < 65536, "distributed: expected MASTER_PORT in 1..65535 for WORLD_SIZE ", d.world_,
           ", found '", env_or("MASTER_PORT", ""), "'");
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(d.timeout_s_ * 1000));
  d.impl_ = std::make_unique<Impl>();
  const std::string where = addr + ":" + std::to_string(port);
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(port);
    so.isServer = d.rank_ == 0;
    so.numWorkers = static_cast<size_t>(d.world_);
    so.waitWorkers = true;  // rank 0 returns once every rank has connected: the rendezvous
    so.timeout = timeout;
    d.impl_->store = c10::make_intrusive<c10d::TCPStore>(addr, so);
  } catch (const std::exception& e) {
    DT_THROW("distributed: rank ", d.rank_, " of ", d.world_, ": rendezvous at ", where,
             d.rank_ == 0 ? " (hosting the store)" : "", " failed within ", d.timeout_s_,
             " s (expected all ranks to join; check MASTER_ADDR/MASTER_PORT and that every rank started): ",
             message_of(e));
  }
  try {
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    const std::string iface = env_or("GLOO_SOCKET_IFNAME", "");
    // Gloo's TCP transport device: loopback for single-machine runs, else this host's
    // address (or the interface the user names), so other machines can connect.
    opts->devices.push_back(!iface.empty()       ? c10d::ProcessGroupGloo::createDeviceForInterface(iface)
                            : is_loopback(addr) ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                                : c10d::ProcessGroupGloo::createDefaultDevice());
    d.impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(d.impl_->store, d.rank_, d.world_, opts);
  } catch (const std::exception& e) {
    DT_THROW("distributed: rank ", d.rank_, " of ", d.world_, ": creating the Gloo process group (store ", where,
             ") failed: ", message_of(e), " (expected all ", d.world_, " ranks to connect within ", d.timeout_s_,
             " s; check that every rank started and can reach the others)");
  }
  return d;
}

namespace {

void wait_for(const c10::intrusive_ptr<c10d::Work>& work, int rank, int world, double timeout_s, const char* what) {
  try {
    work->wait(std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
  } catch (const std::exception& e) {
    DT_THROW("distributed: rank ", rank, " of ", world, ": ", what, " failed: ", message_of(e),
             " (expected every rank to reach the same collective within ", timeout_s,
             " s: another rank died, failed or is stuck; see its own error)");
  }
}

// Rank 0's values of `tensors` to every rank: one broadcast per dtype (flattened).
void broadcast_flat(c10d::ProcessGroupGloo& group, const std::vector<torch::Tensor>& tensors, int rank, int world,
                    double timeout_s, const char* what) {
  torch::NoGradGuard no_grad;
  std::map<int, std::vector<torch::Tensor>> by_type;
  for (const auto& t : tensors) by_type[static_cast<int>(t.scalar_type())].push_back(t);
  for (auto& [type, ts] : by_type) {
    std::vector<torch::Tensor> parts;
    for (const auto& t : ts) parts.push_back(t.detach().reshape(-1));
    std::vector<torch::Tensor> flat{torch::cat(parts)};
    wait_for(group.broadcast(flat), rank, world, timeout_s, what);
    int64_t off = 0;
    for (auto& t : ts) {
      t.detach().copy_(flat[0].narrow(0, off, t.numel()).view_as(t));
      off += t.numel();
    }
  }
}

}  // namespace

void Distributed::broadcast_parameters(torch::nn::Module& module) {
  if (!enabled()) return;
  std::vector<torch::Tensor> ts = module.parameters();
  for (const auto& b : module.buffers()) ts.push_back(b);
  broadcast_flat(*impl_->group, ts, rank_, world_, timeout_s_, "broadcast of rank 0's parameters and buffers");
}

void Distributed::broadcast_buffers(torch::nn::Module& module) {
  if (!enabled()) return;
  const auto ts = module.buffers();
  if (!ts.empty()) broadcast_flat(*impl_->group, ts, rank_, world_, timeout_s_, "broadcast of rank 0's buffers");
}

void Distributed::all_reduce_gradients(const std::vector<torch::Tensor>& params) {
  if (!enabled() || params.empty()) return;
  torch::NoGradGuard no_grad;
  const int64_t n = static_cast<int64_t>(params.size());
  // Buckets of consecutive parameters up to kBucketBytes. The last bucket also carries one
  // flag per parameter (1 = gradient defined on this rank): the flat layout is the same on
  // every rank even if a gradient is undefined on some, and "undefined everywhere" survives.
  std::vector<std::pair<int64_t, int64_t>> buckets;  // [begin, end)
  int64_t bytes = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t b = params[i].numel() * 4;
    if (buckets.empty() || (bytes + b > kBucketBytes && bytes > 0)) buckets.push_back({i, i}), bytes = 0;
    buckets.back().second = i + 1;
    bytes += b;
  }
  auto flags = torch::zeros({n});
  auto* fl = flags.data_ptr<float>();
  std::vector<torch::Tensor> flats;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  for (size_t k = 0; k < buckets.size(); ++k) {
    std::vector<torch::Tensor> parts;
    for (int64_t i = buckets[k].first; i < buckets[k].second; ++i) {
      const auto& g = params[i].grad();
      DT_CHECK(params[i].scalar_type() == torch::kFloat32, "distributed: expected float32 parameters, found ",
               params[i].scalar_type(), " at parameter ", i);
      if (g.defined()) fl[i] = 1.0f;
      parts.push_back(g.defined() ? g.reshape(-1) : torch::zeros({params[i].numel()}));
    }
    if (k + 1 == buckets.size()) parts.push_back(flags);
    std::vector<torch::Tensor> one{torch::cat(parts)};
    works.push_back(impl_->group->allreduce(one));  // all buckets in flight; Gloo's threads overlap them
    flats.push_back(one[0]);
  }
  for (const auto& w : works) wait_for(w, rank_, world_, timeout_s_, "all-reduce of the gradients");
  const auto* summed_flags = flats.back().data_ptr<float>() + (flats.back().numel() - n);
  const float inv = 1.0f / static_cast<float>(world_);
  for (size_t k = 0; k < buckets.size(); ++k) {
    int64_t off = 0;
    for (int64_t i = buckets[k].first; i < buckets[k].second; ++i) {
      auto p = params[i];
      const int64_t m = p.numel();
      if (summed_flags[i] > 0) {
        if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
        p.mutable_grad().copy_(flats[k].narrow(0, off, m).view_as(p)).mul_(inv);
      }
      off += m;
    }
  }
}

void Distributed::all_reduce_sum(torch::Tensor& tensor, const char* what) {
  if (!enabled()) return;
  DT_CHECK(tensor.is_contiguous(), "distributed: ", what, ": expected a contiguous tensor");
  std::vector<torch::Tensor> one{tensor};
  wait_for(impl_->group->allreduce(one), rank_, world_, timeout_s_, what);
}

void Distributed::barrier(const char* what) {
  if (!enabled()) return;
  wait_for(impl_->group->barrier(), rank_, world_, timeout_s_, what);
}

}  // namespace dualtune::engine

#pragma once
// Data-parallel training across processes and machines on PyTorch's own c10d:
// a TCPStore rendezvous (hosted by rank 0) and a ProcessGroupGloo over TCP.
//
// Set-up comes from the torchrun environment variables:
//   MASTER_ADDR, MASTER_PORT  the store (rank 0 listens there)
//   RANK, WORLD_SIZE          this process and the number of processes
//   LOCAL_RANK, LOCAL_WORLD_SIZE  optional: ranks on this machine (thread share);
//                             LOCAL_WORLD_SIZE defaults to WORLD_SIZE when MASTER_ADDR
//                             is a loopback address, else 1
//   DUALTUNE_DIST_TIMEOUT     seconds a collective (and the rendezvous) may wait for
//                             the other ranks, default 60; a dead or stuck peer gives
//                             a dualtune::Error instead of a hang
//   GLOO_SOCKET_IFNAME        optional: network interface Gloo binds to (as in PyTorch)
// Without RANK / WORLD_SIZE the context is world 1 and every call is a no-op, so the
// single-process path is unchanged.
//
// BatchNorm: statistics are per rank, as PyTorch's DDP does by default (no SyncBatchNorm):
// in training mode each rank normalises with the statistics of its own part of the global
// batch, so 2 ranks × B/2 equal one process accumulating the gradients of two B/2
// half-batches, not one process with batch B. Running statistics are not reduced: rank
// 0's are the model's (DDP broadcasts rank 0's buffers every forward; we broadcast them
// at each epoch end, before evaluation and the checkpoint, with the same result).
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace dualtune::engine {

class Distributed {
 public:
  /// World 1, no process group.
  Distributed();
  /// Reads the environment above; world > 1 connects to the other ranks (blocks until
  /// all joined, or throws after the timeout naming MASTER_ADDR:MASTER_PORT).
  static Distributed from_env();
  ~Distributed();
  Distributed(Distributed&&) noexcept;
  Distributed& operator=(Distributed&&) noexcept;

  int rank() const { return rank_; }
  int world_size() const { return world_; }
  int local_rank() const { return local_rank_; }
  int local_world_size() const { return local_world_; }
  bool enabled() const { return world_ > 1; }
  bool is_main() const { return rank_ == 0; }
  double timeout_seconds() const { return timeout_s_; }

  /// Rank 0's parameters and buffers to every rank (start of training, after resume).
  void broadcast_parameters(torch::nn::Module& module);
  /// Rank 0's buffers (BatchNorm running statistics) to every rank.
  void broadcast_buffers(torch::nn::Module& module);
  /// Averages the gradients of `params` over the ranks, in ~25 MB flat buckets (one
  /// all-reduce per bucket, all in flight together), not one call per tensor. A gradient
  /// undefined on every rank stays undefined (the optimizer skips it, as in one process).
  void all_reduce_gradients(const std::vector<torch::Tensor>& params);
  /// In-place sum over the ranks (contiguous CPU tensor; float32/float64/int64).
  void all_reduce_sum(torch::Tensor& tensor, const char* what = "all-reduce");
  void barrier(const char* what = "barrier");

  /// Bucket size of all_reduce_gradients in bytes.
  static constexpr int64_t kBucketBytes = 25 << 20;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rank_ = 0, world_ = 1, local_rank_ = 0, local_world_ = 1;
  double timeout_s_ = 60;
};

}  // namespace dualtune::engine

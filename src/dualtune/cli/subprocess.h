#pragma once
// Child processes of this binary (/proc/self/exe): the one launcher of `train --nproc`
// (data-parallel ranks), `gallery backfill --nproc` (embedding ranks) and `demo --jobs`
// (independent trainings side by side).
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace dualtune::cli {

/// This process's environment as KEY=VALUE strings, without the keys listed in `drop`.
std::vector<std::string> environment_without(const std::vector<std::string>& drop);

/// fork + execve of this binary with argv `args` (args[0] is the program name) and the
/// environment `env`. The child gets SIGTERM when this process dies.
pid_t spawn_self(const std::vector<std::string>& args, const std::vector<std::string>& env);

/// The environment of rank `rank` of `world` processes on this machine, as torchrun sets
/// it: this process's environment without any torchrun variable, plus MASTER_ADDR =
/// 127.0.0.1, MASTER_PORT = port, RANK = LOCAL_RANK = rank, WORLD_SIZE = LOCAL_WORLD_SIZE
/// = world.
std::vector<std::string> local_rank_environment(int rank, int world, int port);

/// waitpid(pid, status, options) retried while a signal interrupts it (EINTR). pid -1
/// waits for any child. Returns what waitpid returns (0 with WNOHANG and none ended).
pid_t wait_child(pid_t pid, int* status, int options = 0);

/// Stops the children pids[i] > 0: SIGTERM to each, SIGKILL to those still running after
/// `grace`; reaps them all and calls on_exit(i, status) for each, setting pids[i] = -1.
void stop_children(std::vector<pid_t>& pids, std::chrono::milliseconds grace,
                   const std::function<void(size_t, int)>& on_exit = {});

/// A TCP port free on 127.0.0.1 right now (the kernel picks it; the process that binds
/// it moments later may race with another one: accepted for a local launcher).
int free_local_port();

/// "exited with code N" / "was killed by signal N (name)", for a waitpid status.
std::string describe_status(int status);

}  // namespace dualtune::cli

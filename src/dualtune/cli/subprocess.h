#pragma once
// Child processes of this binary (/proc/self/exe), for `train --nproc` (data-parallel
// ranks) and `demo --jobs` (independent trainings side by side).
#include <sys/types.h>

#include <string>
#include <vector>

namespace dualtune::cli {

/// This process's environment as KEY=VALUE strings, without the keys listed in `drop`.
std::vector<std::string> environment_without(const std::vector<std::string>& drop);

/// fork + execve of this binary with argv `args` (args[0] is the program name) and the
/// environment `env`. The child gets SIGTERM when this process dies.
pid_t spawn_self(const std::vector<std::string>& args, const std::vector<std::string>& env);

/// A TCP port free on 127.0.0.1 right now (the kernel picks it; the process that binds
/// it moments later may race with another one: accepted for a local launcher).
int free_local_port();

/// "exited with code N" / "was killed by signal N (name)", for a waitpid status.
std::string describe_status(int status);

}  // namespace dualtune::cli

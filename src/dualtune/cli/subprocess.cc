#include "dualtune/cli/subprocess.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "dualtune/util/error.h"

extern char** environ;

namespace dualtune::cli {

std::vector<std::string> environment_without(const std::vector<std::string>& drop) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    if (std::find(drop.begin(), drop.end(), kv.substr(0, kv.find('='))) == drop.end()) env.push_back(kv);
  }
  return env;
}

pid_t spawn_self(const std::vector<std::string>& args, const std::vector<std::string>& env) {
  // Everything the child needs is built before fork (only async-signal-safe calls after).
  std::vector<std::string> a = args, e = env;
  std::vector<char*> argv, envp;
  for (auto& s : a) argv.push_back(s.data());
  argv.push_back(nullptr);
  for (auto& s : e) envp.push_back(s.data());
  envp.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  DT_CHECK(pid >= 0, "fork of '", args.size() > 1 ? args[1] : "dualtune", "' failed: ", std::strerror(errno));
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(127);
    ::execve("/proc/self/exe", argv.data(), envp.data());
    ::_exit(127);
  }
  return pid;
}

std::vector<std::string> local_rank_environment(int rank, int world, int port) {
  auto env = environment_without({"MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"});
  env.push_back("MASTER_ADDR=127.0.0.1");
  env.push_back("MASTER_PORT=" + std::to_string(port));
  env.push_back("RANK=" + std::to_string(rank));
  env.push_back("LOCAL_RANK=" + std::to_string(rank));
  env.push_back("WORLD_SIZE=" + std::to_string(world));
  env.push_back("LOCAL_WORLD_SIZE=" + std::to_string(world));
  return env;
}

pid_t wait_child(pid_t pid, int* status, int options) {
  pid_t r;
  while ((r = ::waitpid(pid, status, options)) < 0 && errno == EINTR) {
  }
  return r;
}

void stop_children(std::vector<pid_t>& pids, std::chrono::milliseconds grace,
                   const std::function<void(size_t, int)>& on_exit) {
  size_t running = 0;
  for (pid_t p : pids)
    if (p > 0) ::kill(p, SIGTERM), ++running;
  const auto deadline = std::chrono::steady_clock::now() + grace;
  bool killed = false;
  while (running > 0) {
    int st = 0;
    const pid_t pid = wait_child(-1, &st, WNOHANG);
    if (pid < 0) break;  // no child left to reap
    if (pid > 0) {
      const auto it = std::find(pids.begin(), pids.end(), pid);
      if (it == pids.end()) continue;
      *it = -1;
      --running;
      if (on_exit) on_exit(static_cast<size_t>(it - pids.begin()), st);
      continue;
    }
    if (!killed && std::chrono::steady_clock::now() > deadline) {
      for (pid_t p : pids)
        if (p > 0) ::kill(p, SIGKILL);
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

int free_local_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  DT_CHECK(fd >= 0, "cannot create a socket to find a free port: ", std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  ::close(fd);
  DT_CHECK(ok, "cannot find a free port on 127.0.0.1: ", std::strerror(errno));
  return ntohs(a.sin_port);
}

std::string describe_status(int st) {
  if (WIFEXITED(st)) return "exited with code " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st))
    return "was killed by signal " + std::to_string(WTERMSIG(st)) + " (" + strsignal(WTERMSIG(st)) + ")";
  return "ended abnormally";
}

}  // namespace dualtune::cli

#pragma once
// The life of an HTTP listener, shared by `serve` (Service) and `proxy` (ShardProxy):
// bind with SO_REUSEADDR only, listen until a stop is asked, answer the requests in
// flight, return. httplib's stop() only acts on a running listener (and must be called
// once), so a stopper thread waits for the listener to run: a stop asked just before
// run() is not lost.
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>

namespace httplib {
class Server;
}

namespace dualtune::serve {

class Listener {
 public:
  explicit Listener(httplib::Server& server) : server_(server) {}
  /// Binds host:port (0: any free port) and returns the port. SO_REUSEADDR only: a
  /// restart may reuse a port whose old connections linger, but a port another server
  /// listens on is refused (httplib's default, SO_REUSEPORT, would let a second server
  /// share it and take half of its connections). `who` names the command in the error.
  int bind(const std::string& host, int port, const std::string& who);
  /// Listens until request_stop(); returns once the requests in flight are answered.
  void run();
  /// Asks run() to return (from any thread, any number of times; before run() too).
  void request_stop();

 private:
  httplib::Server& server_;
  std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::atomic<bool> listening_{false};
};

}  // namespace dualtune::serve

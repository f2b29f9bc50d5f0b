#include "dualtune/serve/listener.h"

#include <httplib.h>

#include <chrono>
#include <thread>

#include "dualtune/util/error.h"

namespace dualtune::serve {

int Listener::bind(const std::string& host, int port, const std::string& who) {
  server_.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  const int bound = port == 0 ? server_.bind_to_any_port(host) : (server_.bind_to_port(host, port) ? port : -1);
  DT_CHECK(bound > 0, who, ": cannot listen on ", host, ":", port, " (address in use, or not an address of this machine?)");
  return bound;
}

void Listener::run() {
  std::thread stopper([this] {
    std::unique_lock<std::mutex> lk(mu_);
    stop_cv_.wait(lk, [this] { return stopping_; });
    lk.unlock();
    while (listening_.load() && !server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (listening_.load()) server_.stop();
  });
  {
    std::lock_guard<std::mutex> lk(mu_);
    listening_ = !stopping_;
  }
  if (listening_) server_.listen_after_bind();  // returns after stop(), once in-flight requests are answered
  listening_ = false;
  request_stop();  // the stopper's wait ends whichever way the listener ended
  stopper.join();
}

void Listener::request_stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  stop_cv_.notify_all();
}

}  // namespace dualtune::serve

#pragma once
// Request metrics per route: counts since start (requests, 4xx, 5xx) and latency
// percentiles over the route's most recent requests (a window of kWindow latencies:
// exact percentiles of what the service does now, not since start). Latency is the time
// from the request's routing to its response being ready (the handler's work), in ms.
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dualtune::serve {

class Metrics {
 public:
  static constexpr size_t kWindow = 4096;
  /// Records one answered request of `route` (e.g. "POST /api/search").
  void record(const std::string& route, int status, double ms);
  /// {"uptime_seconds", "window", "routes": [{"route", "requests", "errors_4xx", "errors_5xx",
  ///  "p50_ms", "p90_ms", "p99_ms", "max_ms"}], "total": {same without route}}; p* are null
  /// for a route without requests. Percentile p = the ceil(p·n)-th smallest of the window.
  nlohmann::json to_json() const;

 private:
  struct Route {
    int64_t requests = 0, errors_4xx = 0, errors_5xx = 0;
    std::vector<double> window;  ///< ring buffer of the last kWindow latencies
    size_t next = 0;
  };
  static void add(Route& r, int status, double ms);
  static nlohmann::json summary(const Route& r);
  mutable std::mutex mu_;
  std::map<std::string, Route> routes_;
  Route total_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

/// The p-quantile of values (nearest rank: the ceil(p·n)-th smallest, p in (0, 1]); values is reordered.
double nearest_rank(std::vector<double>& values, double p);

}  // namespace dualtune::serve

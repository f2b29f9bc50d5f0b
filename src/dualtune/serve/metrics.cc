#include "dualtune/serve/metrics.h"

#include <algorithm>
#include <cmath>

namespace dualtune::serve {

double nearest_rank(std::vector<double>& values, double p) {
  const size_t n = values.size();
  const size_t rank = std::max<size_t>(1, static_cast<size_t>(std::ceil(p * static_cast<double>(n))));
  auto nth = values.begin() + static_cast<std::ptrdiff_t>(std::min(rank, n) - 1);
  std::nth_element(values.begin(), nth, values.end());
  return *nth;
}

void Metrics::add(Route& r, int status, double ms) {
  ++r.requests;
  if (status >= 500) ++r.errors_5xx;
  else if (status >= 400) ++r.errors_4xx;
  if (r.window.size() < kWindow) {
    r.window.push_back(ms);
  } else {
    r.window[r.next] = ms;
    r.next = (r.next + 1) % kWindow;
  }
}

void Metrics::record(const std::string& route, int status, double ms) {
  std::lock_guard<std::mutex> lk(mu_);
  add(routes_[route], status, ms);
  add(total_, status, ms);
}

nlohmann::json Metrics::summary(const Route& r) {
  nlohmann::json j{{"requests", r.requests}, {"errors_4xx", r.errors_4xx}, {"errors_5xx", r.errors_5xx}};
  std::vector<double> w = r.window;
  for (const auto& [name, p] : {std::pair<const char*, double>{"p50_ms", 0.5}, {"p90_ms", 0.9}, {"p99_ms", 0.99}})
    j[name] = w.empty() ? nlohmann::json(nullptr) : nlohmann::json(nearest_rank(w, p));
  j["max_ms"] = w.empty() ? nlohmann::json(nullptr) : nlohmann::json(*std::max_element(w.begin(), w.end()));
  return j;
}

nlohmann::json Metrics::to_json() const {
  std::lock_guard<std::mutex> lk(mu_);
  nlohmann::json routes = nlohmann::json::array();
  for (const auto& [name, r] : routes_) {
    auto j = summary(r);
    j["route"] = name;
    routes.push_back(j);
  }
  return {{"uptime_seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count()},
          {"window", kWindow},
          {"routes", routes},
          {"total", summary(total_)}};
}

}  // namespace dualtune::serve

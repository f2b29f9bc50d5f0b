#pragma once
// What the benchmarks against PyTorch from Python share (bench_vs_pytorch.cc,
// bench_torchscript_vs_pytorch.cc): running a command and reading a number from its
// output, and the report of alternating rounds — min / median / max per row, each
// ratio as the median of the per-round ratios (their range) and as a's median over b's
// best round (the fairest to b). The machine is shared: only ratios measured side by
// side in one run mean anything.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "dualtune/util/install_paths.h"

namespace dualtune::bench {

// A file of the source tree: the benchmark runs from the build directory, where the
// shipped configs are found as the binary finds them (util/install_paths.h), in the
// source tree that also holds bench/.
inline std::string source(const std::string& rel) {
  return (std::filesystem::path(require_shipped_dir("configs")).parent_path() / rel).string();
}

inline std::string python() {
  const char* p = std::getenv("PYTHON");
  return p ? p : "/usr/bin/python3";
}

// Runs `cmd`, returns its output (stdout + stderr) and sets *ok to its success.
inline std::string run(const std::string& cmd, bool* ok) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  std::string out;
  if (!p) {
    *ok = false;
    return out;
  }
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  *ok = ::pclose(p) == 0;
  return out;
}

// The number after `key` on the last line holding it, -1 if none.
inline double number_after(const std::string& out, const std::string& key) {
  const auto at = out.rfind(key);
  if (at == std::string::npos) return -1;
  return std::atof(out.c_str() + at + key.size());
}

// Median (the mean of the two middle values for an even count), min and max.
struct Spread {
  double min = -1, median = -1, max = -1;
};
inline Spread spread(std::vector<double> v) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return {v.front(), n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, v.back()};
}

inline std::string cpu_flags() {
  std::ifstream is("/proc/cpuinfo");
  std::string line, model;
  bool bf16 = false, amx = false, avx512 = false;
  while (std::getline(is, line)) {
    if (model.empty() && line.rfind("model name", 0) == 0) model = line.substr(line.find(':') + 2);
    if (line.rfind("flags", 0) == 0) {
      bf16 = line.find(" avx512_bf16") != std::string::npos;
      amx = line.find(" amx_bf16") != std::string::npos;
      avx512 = line.find(" avx512f") != std::string::npos;
      break;
    }
  }
  return model + "; avx512f " + (avx512 ? "yes" : "no") + ", avx512_bf16 " + (bf16 ? "yes" : "no") + ", amx_bf16 " +
         (amx ? "yes" : "no");
}

// "last epoch: S s, R img/s" of `dualtune train` (cli/train.cc), -1 if absent.
inline double train_images_per_second(const std::string& out) {
  double secs = 0, ips = -1;
  const auto at = out.rfind("last epoch: ");
  if (at == std::string::npos || std::sscanf(out.c_str() + at, "last epoch: %lf s, %lf img/s", &secs, &ips) != 2)
    return -1.0;
  return ips;
}

// img/s per row name, one value per round, in the order the rows were measured.
using Rounds = std::map<std::string, std::vector<double>>;

// One line per round: "warm-up:" or "round r:" and each row's last value ("-" if the row
// was not measured in this round).
inline void print_round(int r, const std::vector<std::string>& names, const Rounds& ips) {
  std::printf(r == 0 ? "warm-up:" : "round %d:", r);
  for (const auto& n : names) {
    const auto it = ips.find(n);
    const bool has = it != ips.end() && it->second.size() > static_cast<size_t>(r);
    std::printf(" %s", has ? std::to_string(static_cast<int>(it->second.back())).c_str() : "-");
  }
  std::printf("\n");
  std::fflush(stdout);
}

// Drops round 0 (the warm-up) from every row.
inline void drop_warm_up(Rounds& ips) {
  for (auto& [name, v] : ips)
    if (!v.empty()) v.erase(v.begin());
}

inline void print_table(const std::vector<std::string>& names, Rounds& ips) {
  std::printf("\n%-40s %8s %8s %8s   %s\n", "img/s", "min", "median", "max", "rounds");
  for (const auto& n : names) {
    if (ips[n].empty()) {
      std::printf("%-40s %8s\n", n.c_str(), "not measured");
      continue;
    }
    const Spread sp = spread(ips[n]);
    std::printf("%-40s %8.0f %8.0f %8.0f  ", n.c_str(), sp.min, sp.median, sp.max);
    for (double v : ips[n]) std::printf(" %.0f", v);
    std::printf("\n");
  }
  std::printf("\nratios: median of the per-round ratios (min-max), and a's median over b's best round\n");
}

// Rows without measurements of both sides are left out.
inline void print_ratio(const std::string& label, Rounds& ips, const std::string& a, const std::string& b) {
  std::vector<double> r;
  for (size_t i = 0; i < std::min(ips[a].size(), ips[b].size()); ++i) r.push_back(ips[a][i] / ips[b][i]);
  if (r.empty()) return;
  const Spread sp = spread(r);
  std::printf("  %-50s %5.2f  (%.2f-%.2f)  %5.2f\n", label.c_str(), sp.median, sp.min, sp.max,
              spread(ips[a]).median / spread(ips[b]).max);
}

}  // namespace dualtune::bench

#include "dualtune/util/cpu_features.h"

#include <fstream>
#include <sstream>

#include "dualtune/util/env.h"

namespace dualtune {

std::string bf16_flags(const std::string& flags_line) {
  const auto colon = flags_line.find(':');
  std::istringstream words(colon == std::string::npos ? flags_line : flags_line.substr(colon + 1));
  bool avx512 = false, amx = false;
  for (std::string w; words >> w;) {
    avx512 = avx512 || w == "avx512_bf16";
    amx = amx || w == "amx_bf16";
  }
  if (avx512 && amx) return "avx512_bf16,amx_bf16";
  return avx512 ? "avx512_bf16" : amx ? "amx_bf16" : "";
}

namespace {

std::string detected_bf16_flags() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("flags", 0) == 0) return bf16_flags(line);  // the first CPU speaks for all
  return "";
}

}  // namespace

CpuBf16 cpu_bf16() {
  const std::string forced = env_or("DUALTUNE_CPU_BF16", "");
  if (forced == "1" || forced == "0") return {forced == "1", "DUALTUNE_CPU_BF16=" + forced};
  static const std::string flags = detected_bf16_flags();
  return {!flags.empty(), flags.empty() ? "none" : flags};
}

}  // namespace dualtune

// The bf16 flags of a /proc/cpuinfo "flags" line, and the override that stands in for
// a CPU with or without them.
#include <gtest/gtest.h>

#include <cstdlib>

#include "dualtune/util/cpu_features.h"

using namespace dualtune;

TEST(CpuFeatures, Bf16FlagsAreReadAsWholeWords) {
  // An AMD Zen 4 (avx512_bf16, no AMX) and an Intel Sapphire Rapids (both).
  EXPECT_EQ(bf16_flags("flags\t\t: fpu vme avx2 avx512f avx512_bf16 avx512vnni"), "avx512_bf16");
  EXPECT_EQ(bf16_flags("flags : avx512_bf16 amx_bf16 amx_tile amx_int8"), "avx512_bf16,amx_bf16");
  EXPECT_EQ(bf16_flags("flags : amx_tile amx_bf16"), "amx_bf16");
  // A Zen 3 / Xeon without them; prefixes and suffixes of the names do not count.
  EXPECT_EQ(bf16_flags("flags : fpu avx2 avx512f avx512_vnni"), "");
  EXPECT_EQ(bf16_flags("flags : avx512_bf16x amx_bf"), "");
  EXPECT_EQ(bf16_flags(""), "");
}

TEST(CpuFeatures, OverrideStandsInForTheCpu) {
  ::setenv("DUALTUNE_CPU_BF16", "1", 1);
  EXPECT_TRUE(cpu_bf16().fast);
  EXPECT_EQ(cpu_bf16().source, "DUALTUNE_CPU_BF16=1");
  ::setenv("DUALTUNE_CPU_BF16", "0", 1);
  EXPECT_FALSE(cpu_bf16().fast);
  ::unsetenv("DUALTUNE_CPU_BF16");
  // Unset: what /proc/cpuinfo says, with the flag it found named.
  const CpuBf16 cpu = cpu_bf16();
  EXPECT_EQ(cpu.fast, cpu.source != "none") << cpu.source;
}

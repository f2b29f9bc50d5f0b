// Replays the fuzzing regression corpus (tests/regression/<target>/*) and the fuzz seed
// corpus (fuzz/corpus/<target>/*) through the parsers the fuzz targets exercise: each
// input must parse or throw dualtune::Error; any other exception fails, a crash kills
// the test (and under scripts/sanitize.sh, ASan/UBSan report it).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "dualtune/config/config.h"
#include "dualtune/data/idx.h"
#include "dualtune/data/market1501.h"
#include "dualtune/features/npy.h"
#include "dualtune/features/npz.h"
#include "dualtune/util/error.h"

namespace fs = std::filesystem;
using namespace dualtune;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream is(p, std::ios::binary);
  std::ostringstream ss;
  ss << is.rdbuf();
  return ss.str();
}

// The calls each fuzz target makes (fuzz/fuzz_<target>.cc).
const std::map<std::string, std::function<void(const std::string&)>>& parsers() {
  static const std::map<std::string, std::function<void(const std::string&)>> m{
      {"fuzz_idx",
       [](const std::string& b) {
         try {
           const auto a = data::parse_idx(b, "<regression>");
           // What every reader relies on: data holds exactly prod(dims) bytes (no wrap-around).
           size_t n = 1;
           for (auto d : a.dims) {
             ASSERT_GE(d, 0);
             ASSERT_FALSE(__builtin_mul_overflow(n, static_cast<size_t>(d), &n)) << "dims product overflows";
           }
           ASSERT_EQ(n, a.data.size());
         } catch (const Error&) {
         }
         data::parse_idx(b, "<regression>", 3);
       }},
      {"fuzz_npy",
       [](const std::string& b) {
         const auto a = npy::parse(b, "<regression>");
         EXPECT_EQ(a.f32.size() + a.i64.size(), static_cast<size_t>(a.numel()));
       }},
      {"fuzz_npz",
       [](const std::string& b) {
         for (const auto& [key, member] : npy::npz_members(b, "<regression>")) {
           try {
             const auto a = npy::parse(member, key);
             EXPECT_EQ(a.f32.size() + a.i64.size(), static_cast<size_t>(a.numel()));
           } catch (const Error&) {
           }
         }
       }},
      {"fuzz_config",
       [](const std::string& b) {
         if (b.find("_BASE_") != std::string::npos) return;  // as the fuzzer: no file access
         try {
           config::Config::from_string(b).validate();
         } catch (const Error&) {
         }
         config::Config c;
         c.set(b);
         c.validate();
       }},
      {"fuzz_market_name", [](const std::string& b) { data::parse_market_name(b); }},
  };
  return m;
}

// Replays every file under root/<target>/; returns how many inputs ran.
int replay(const fs::path& root) {
  int n = 0;
  if (!fs::is_directory(root)) return 0;
  for (const auto& dir : fs::directory_iterator(root)) {
    if (!dir.is_directory()) continue;
    const std::string target = dir.path().filename().string();
    const auto it = parsers().find(target);
    EXPECT_NE(it, parsers().end()) << "no parser for corpus directory " << dir.path();
    if (it == parsers().end()) continue;
    for (const auto& f : fs::directory_iterator(dir.path())) {
      if (!f.is_regular_file()) continue;
      ++n;
      try {
        SCOPED_TRACE(f.path().string());
        it->second(slurp(f.path()));
      } catch (const Error&) {
        // a clear error is the expected outcome for bad input
      } catch (const std::exception& e) {
        ADD_FAILURE() << f.path() << ": " << target << " threw a non-dualtune exception: " << e.what();
      } catch (...) {
        ADD_FAILURE() << f.path() << ": " << target << " threw an unknown exception";
      }
    }
  }
  return n;
}

}  // namespace

TEST(RegressionCorpus, EveryCrashInputNowParsesOrThrowsDualtuneError) {
  const fs::path src(DUALTUNE_SOURCE_DIR);
  const int n = replay(src / "tests" / "regression");
  std::printf("replayed %d regression inputs\n", n);
}

TEST(RegressionCorpus, EveryFuzzSeedParsesOrThrowsDualtuneError) {
  const fs::path src(DUALTUNE_SOURCE_DIR);
  EXPECT_GT(replay(src / "fuzz" / "corpus"), 10);
}

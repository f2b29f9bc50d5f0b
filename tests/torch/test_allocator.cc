// The allocator-tuning library (util/allocator.h) is linked into the torch binaries and
// its constructor ran before main; DUALTUNE_MALLOC=default turns it off.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

#include "dualtune/util/allocator.h"

TEST(Allocator, TuningAppliedAtLoadUnlessDisabled) {
  const char* env = std::getenv("DUALTUNE_MALLOC");
  const bool disabled = env && std::strcmp(env, "default") == 0;
  EXPECT_EQ(dualtune::malloc_tuning_active(), !disabled);
}

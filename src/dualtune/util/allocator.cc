#include "dualtune/util/allocator.h"

#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace dualtune {
namespace {

bool g_active = false;

// Runs when the library is loaded, before the other libraries' initialisers (-z initfirst);
// that early, getenv() does not see the environment yet, so it reads the envp that glibc
// passes to ELF constructors.
__attribute__((constructor)) void tune_malloc(int, char**, char** envp) {
#if defined(__GLIBC__)
  for (char** e = envp; e && *e; ++e)
    if (std::strcmp(*e, "DUALTUNE_MALLOC=default") == 0) return;
  // Both are needed (measured): the threshold alone still trims, the trim threshold alone still munmaps.
  g_active = mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1;
#endif
}

}  // namespace

bool malloc_tuning_active() { return g_active; }

}  // namespace dualtune

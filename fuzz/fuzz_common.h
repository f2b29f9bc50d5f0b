#pragma once
// Shared by the libFuzzer targets: a parser may succeed or throw dualtune::Error;
// any other exception escaping it is a bug, reported as a crash (abort).
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "dualtune/util/error.h"

namespace dualtune::fuzz {

template <class F>
void expect_ok_or_error(const char* parser, F&& f) {
  try {
    f();
  } catch (const dualtune::Error&) {
    // the documented failure mode: a clear error message
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s threw a non-dualtune exception: %s\n", parser, e.what());
    std::abort();
  } catch (...) {
    std::fprintf(stderr, "%s threw an unknown exception\n", parser);
    std::abort();
  }
}

}  // namespace dualtune::fuzz

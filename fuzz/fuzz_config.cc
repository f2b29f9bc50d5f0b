// libFuzzer target: config::Config::from_string (YAML text merged over the schema, then
// validate()) and Config::set overrides. Only dualtune::Error may escape; a YAML::Exception
// (or anything else) escaping is a bug in the config layer.
#include <cstddef>
#include <cstdint>
#include <string>

#include "dualtune/config/config.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  // _BASE_ makes the loader open files named by the input: keep the fuzzer off the
  // file system (the _BASE_ chain is covered by tests/core/test_config.cc).
  if (text.find("_BASE_") != std::string::npos) return 0;
  dualtune::fuzz::expect_ok_or_error("Config::from_string", [&] {
    const auto c = dualtune::config::Config::from_string(text);
    c.validate();
    (void)c.hash();
  });
  // The same bytes as a command-line override "key=value".
  dualtune::fuzz::expect_ok_or_error("Config::set", [&] {
    dualtune::config::Config c;
    c.set(text);
    c.validate();
  });
  return 0;
}

#pragma once
// Errors raised at dualtune's boundaries. Every message says what was expected,
// what was found, and where (file, key, step), so a user can fix the input.
#include <sstream>
#include <stdexcept>
#include <string>

namespace dualtune {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace dualtune

/// Throws dualtune::Error with the streamed arguments as message:
/// DT_THROW("npy ", path, ": expected dtype <f4, found ", dtype);
#define DT_THROW(...) throw ::dualtune::Error(::dualtune::detail::concat(__VA_ARGS__))
#define DT_CHECK(cond, ...) \
  do {                      \
    if (!(cond)) DT_THROW(__VA_ARGS__); \
  } while (0)

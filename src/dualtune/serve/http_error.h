#pragma once
// An error a handler answers with: HTTP status + a message saying what was expected and
// what was found. The dispatcher (service.cc) sends it as {"error": message}.
#include <stdexcept>
#include <string>

#include "dualtune/util/error.h"

namespace dualtune::serve {

struct HttpError : std::runtime_error {
  HttpError(int status, const std::string& message) : std::runtime_error(message), status(status) {}
  int status;
};

}  // namespace dualtune::serve

/// Throws HttpError(status, streamed arguments) unless cond holds:
/// HTTP_CHECK(k >= 1, 400, "k must be at least 1, found ", k);
#define HTTP_CHECK(cond, status, ...) \
  do {                                \
    if (!(cond)) throw ::dualtune::serve::HttpError(status, ::dualtune::detail::concat(__VA_ARGS__)); \
  } while (0)
#define HTTP_THROW(status, ...) throw ::dualtune::serve::HttpError(status, ::dualtune::detail::concat(__VA_ARGS__))

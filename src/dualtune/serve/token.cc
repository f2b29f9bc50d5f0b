#include "dualtune/serve/token.h"

#include <cctype>

#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"

namespace dualtune::serve {

std::string read_token_file(const std::string& path) {
  std::string s = read_file(path);
  const auto first = s.find_first_not_of(" \t\r\n");
  const auto last = s.find_last_not_of(" \t\r\n");
  s = first == std::string::npos ? "" : s.substr(first, last - first + 1);
  DT_CHECK(s.size() >= 16, "token file ", path, ": expected a token of at least 16 characters, found ", s.size(),
           " (e.g. `head -c 24 /dev/urandom | base64 > ", path, "`)");
  for (unsigned char c : s)
    DT_CHECK(std::isgraph(c), "token file ", path, ": expected one token without spaces or control characters");
  return s;
}

bool tokens_equal(const std::string& presented, const std::string& secret) {
  if (secret.empty()) return false;
  // Every byte of `presented` is compared (against the secret, cyclically), and the
  // length difference is folded in: no early exit.
  volatile unsigned char diff = presented.size() == secret.size() ? 0 : 1;
  for (size_t i = 0; i < presented.size(); ++i)
    diff = diff | static_cast<unsigned char>(presented[i] ^ secret[i % secret.size()]);
  return diff == 0 && !presented.empty();
}

std::string bearer_token(const std::string& authorization) {
  const std::string scheme = "Bearer ";
  if (authorization.size() <= scheme.size()) return "";
  for (size_t i = 0; i < scheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != std::tolower(static_cast<unsigned char>(scheme[i])))
      return "";
  const auto start = authorization.find_first_not_of(' ', scheme.size());
  return start == std::string::npos ? "" : authorization.substr(start);
}

}  // namespace dualtune::serve

#pragma once
// The bearer token of the write routes: read from a file (--token-file), compared in
// constant time so the answer's timing does not tell how much of a guess was right.
#include <string>

namespace dualtune::serve {

/// The token in `path` (surrounding whitespace and the final newline removed). Throws
/// dualtune::Error naming the file when it is unreadable or the token is shorter than 16
/// characters or contains whitespace.
std::string read_token_file(const std::string& path);

/// a == b, in time that depends only on a.size() (the presented token), not on where
/// the first difference is.
bool tokens_equal(const std::string& presented, const std::string& secret);

/// The token of an "Authorization: Bearer <token>" header value; "" when the header is
/// not of that form.
std::string bearer_token(const std::string& authorization);

}  // namespace dualtune::serve

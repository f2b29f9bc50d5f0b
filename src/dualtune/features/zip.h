#pragma once
// Reads the members of a ZIP archive held in memory (PKWARE APPNOTE 6.3): the end of
// central directory record (with its ZIP64 form), the central directory, then each
// member's local header and data. Methods 0 (stored) and 8 (deflate, through zlib) are
// read; CRC-32 is checked. Enough for .npz files as np.savez (stored) and
// np.savez_compressed (deflate) write them, ZIP64 extra fields included.
#include <string>
#include <utility>
#include <vector>

namespace dualtune::zip {

/// (name, uncompressed bytes) of every member, in central-directory order. Throws
/// dualtune::Error naming source and what was wrong: not a zip, truncated, encrypted or
/// unsupported method, size or CRC mismatch, a declared size deflate cannot reach.
std::vector<std::pair<std::string, std::string>> read_members(const std::string& bytes, const std::string& source);

}  // namespace dualtune::zip

#pragma once
// NumPy .npz archives: a ZIP (features/zip.h) of .npy files, one per array, named
// "<key>.npy" as np.savez (stored) and np.savez_compressed (deflate) write them.
// Members are returned unparsed so that a caller parses (npy::parse) only the arrays
// it uses and an unrelated member of a dtype it does not read does no harm.
#include <map>
#include <string>

namespace dualtune::npy {

/// key -> bytes of "<key>.npy", for every member. Throws dualtune::Error naming source
/// for a broken archive, a member not named *.npy, or a key given twice.
std::map<std::string, std::string> npz_members(const std::string& bytes, const std::string& source);

}  // namespace dualtune::npy

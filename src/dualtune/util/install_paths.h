#pragma once
// Where the files shipped with dualtune (configs/, docs/) are, found at run time from
// the running binary (/proc/self/exe), never through a path compiled in:
//   installed:       <prefix>/bin/dualtune -> <prefix>/share/dualtune/<what>
//   build directory: <build>/dualtune with <build>/CMakeCache.txt -> <source>/<what>
//                    (the source directory CMake recorded in that cache)
#include <string>

namespace dualtune {

/// Where Debian's dataset-fashion-mnist installs the Fashion-MNIST IDX files: the default
/// data.root (config/schema.cc) and the data of the demo's Fashion-MNIST scenarios.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

/// Directory of the running executable (resolved /proc/self/exe), "" if unknown.
std::string executable_dir();

/// The shipped directory `what` ("configs" or "docs") for the binary in exe_dir, tried in
/// the order above; "" when neither exists. exe_dir defaults to executable_dir().
std::string shipped_dir(const std::string& what, const std::string& exe_dir = executable_dir());

/// shipped_dir(what), or throws dualtune::Error naming the places tried.
std::string require_shipped_dir(const std::string& what);

}  // namespace dualtune

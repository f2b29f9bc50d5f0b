#pragma once
// Scalar text of a config value, shared by loading (load.cc), typed access (config.cc)
// and validation (validate.cc). Internal to config/.
#include <cstdint>
#include <string>

#include <yaml-cpp/yaml.h>

namespace dualtune::config::detail {

/// Decimal integer, optional leading '+'; the whole text must parse.
bool parse_int(const std::string& s, int64_t& out);
/// Integer or finite floating-point number; the whole text must parse.
bool parse_float(const std::string& s, double& out);
/// true/True/TRUE, false/False/FALSE.
bool parse_bool(const std::string& s, bool& out);
/// Shortest round-trip text of d, with ".0" added when it would read as an integer.
std::string format_float(double d);
/// How a value is named in an error: "a map", "a list", "an empty value" or 'text'.
std::string found_text(const YAML::Node& v);

}  // namespace dualtune::config::detail

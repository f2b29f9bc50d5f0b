#include "dualtune/config/scalar.h"

#include <charconv>
#include <cmath>

namespace dualtune::config::detail {

bool parse_int(const std::string& s, int64_t& out) {
  if (s.empty()) return false;
  const char* b = s.data();
  const char* e = b + s.size();
  if (*b == '+') ++b;
  auto r = std::from_chars(b, e, out);
  return r.ec == std::errc() && r.ptr == e;
}

bool parse_float(const std::string& s, double& out) {
  if (s.empty()) return false;
  int64_t i;
  if (parse_int(s, i)) {
    out = static_cast<double>(i);
    return true;
  }
  const char* b = s.data();
  const char* e = b + s.size();
  if (*b == '+') ++b;
  auto r = std::from_chars(b, e, out, std::chars_format::general);
  if (r.ec == std::errc() && r.ptr == e) return std::isfinite(out);
  return false;
}

bool parse_bool(const std::string& s, bool& out) {
  if (s == "true" || s == "True" || s == "TRUE") return out = true, true;
  if (s == "false" || s == "False" || s == "FALSE") return out = false, true;
  return false;
}

std::string found_text(const YAML::Node& v) {
  if (v.IsMap()) return "a map";
  if (v.IsSequence()) return "a list";
  if (v.IsNull()) return "an empty value";
  return "'" + v.Scalar() + "'";
}

std::string format_float(double d) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  std::string s(buf, r.ptr);
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

}  // namespace dualtune::config::detail

// Class subset specs; grammar in class_subset.h.
#include "dualtune/data/class_subset.h"

#include <charconv>
#include <cmath>
#include <set>

#include "dualtune/util/error.h"

namespace dualtune::data {
namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

bool parse_int(const std::string& s, int64_t& out) {
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

}  // namespace

std::vector<std::string> select_classes(const std::vector<std::string>& names, const std::string& spec_in) {
  const std::string spec = trim(spec_in);
  DT_CHECK(!spec.empty(), "class subset: expected all | fraction:F | a list of classes or ranges, found an empty spec");
  if (spec == "all") return names;

  const size_t C = names.size();
  if (spec.rfind("fraction:", 0) == 0) {
    const std::string f_text = trim(spec.substr(9));
    double f = 0;
    auto r = std::from_chars(f_text.data(), f_text.data() + f_text.size(), f);
    DT_CHECK(r.ec == std::errc() && r.ptr == f_text.data() + f_text.size() && f > 0.0 && f <= 1.0,
             "class subset '", spec, "': expected fraction:F with 0 < F <= 1, found '", f_text, "'");
    const size_t n = static_cast<size_t>(std::ceil(f * static_cast<double>(C) - 1e-9));
    DT_CHECK(n > 0, "class subset '", spec, "': selects no class of ", C);
    return std::vector<std::string>(names.begin(), names.begin() + static_cast<std::ptrdiff_t>(std::min(n, C)));
  }

  std::vector<char> chosen(C, 0);
  std::vector<int64_t> numeric(C);
  std::vector<char> is_numeric(C, 0);
  for (size_t i = 0; i < C; ++i) is_numeric[i] = parse_int(names[i], numeric[i]);

  size_t start = 0;
  while (start <= spec.size()) {
    size_t comma = spec.find(',', start);
    if (comma == std::string::npos) comma = spec.size();
    const std::string item = trim(spec.substr(start, comma - start));
    start = comma + 1;
    DT_CHECK(!item.empty(), "class subset '", spec, "': empty item (expected a class name or LO-HI)");

    bool found = false;
    for (size_t i = 0; i < C; ++i)
      if (names[i] == item) chosen[i] = 1, found = true;
    if (found) continue;

    int64_t v;
    if (parse_int(item, v)) {
      for (size_t i = 0; i < C; ++i)
        if (is_numeric[i] && numeric[i] == v) chosen[i] = 1, found = true;
      DT_CHECK(found, "class subset '", spec, "': unknown class '", item, "' (the dataset has ", C, " classes)");
      continue;
    }
    // LO-HI: the dash separating two integers (LO itself may be negative: "-1-3").
    const size_t dash = item.find('-', 1);
    int64_t lo, hi;
    DT_CHECK(dash != std::string::npos && parse_int(trim(item.substr(0, dash)), lo) &&
                 parse_int(trim(item.substr(dash + 1)), hi),
             "class subset '", spec, "': unknown class '", item, "' (expected a class name or a range LO-HI)");
    DT_CHECK(lo <= hi, "class subset '", spec, "': range '", item, "' has LO > HI");
    for (size_t i = 0; i < C; ++i)
      if (is_numeric[i] && numeric[i] >= lo && numeric[i] <= hi) chosen[i] = 1, found = true;
    DT_CHECK(found, "class subset '", spec, "': range '", item, "' selects no class");
  }

  std::vector<std::string> out;
  for (size_t i = 0; i < C; ++i)
    if (chosen[i]) out.push_back(names[i]);
  DT_CHECK(!out.empty(), "class subset '", spec, "': selects no class");
  return out;
}

}  // namespace dualtune::data

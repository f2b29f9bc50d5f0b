// Config: typed access by dotted key, the resolved YAML text and its hash. Loading and
// merging are in load.cc, range and enum checks in validate.cc.
#include "dualtune/config/config.h"

#include <cstdio>
#include <limits>
#include <sstream>
#include <tuple>

#include "dualtune/config/scalar.h"
#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"

namespace dualtune::config {
namespace {

using detail::found_text;
using detail::parse_bool;
using detail::parse_float;
using detail::parse_int;

/// Node at a dotted key, or an undefined node.
YAML::Node find(const YAML::Node& root, const std::string& dotted) {
  YAML::Node cur = root;
  std::stringstream ss(dotted);
  std::string part;
  while (std::getline(ss, part, '.')) {
    int64_t index = -1;
    if (parse_int(part, index) && index >= 0) {
      // "old.1.path": entry 1 of a list; a plain map is a list of one entry.
      if (cur.IsMap() && index == 0) continue;
      if (!cur.IsSequence() || index >= static_cast<int64_t>(cur.size())) return YAML::Node(YAML::NodeType::Undefined);
      YAML::Node next = static_cast<const YAML::Node&>(cur)[static_cast<size_t>(index)];
      cur.reset(next);
      continue;
    }
    if (!cur.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    YAML::Node next = static_cast<const YAML::Node&>(cur)[part];
    if (!next.IsDefined()) return YAML::Node(YAML::NodeType::Undefined);
    cur.reset(next);  // not operator=, which would overwrite the referenced node
  }
  return cur;
}

}  // namespace

Config::Config(const Config& other) : root_(YAML::Clone(other.root_)) {}

Config& Config::operator=(const Config& other) {
  if (this != &other) root_.reset(YAML::Clone(other.root_));  // deep copy, never shared
  return *this;
}

template <class T>
T Config::get(const std::string& dotted) const {
  const YAML::Node n = find(root_, dotted);
  if (!n.IsDefined()) DT_THROW("config: no key '", dotted, "'");
  auto bad = [&](const char* what) -> T {
    DT_THROW("config key '", dotted, "': expected ", what, ", found ", found_text(n));
  };
  if constexpr (std::is_same_v<T, bool>) {
    bool b;
    if (!n.IsScalar() || !parse_bool(n.Scalar(), b)) return bad("a boolean");
    return b;
  } else if constexpr (std::is_integral_v<T>) {
    int64_t i;
    if (!n.IsScalar() || !parse_int(n.Scalar(), i)) return bad("an integer");
    if (i < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
        i > static_cast<int64_t>(std::numeric_limits<T>::max()))
      return bad("an integer in range");
    return static_cast<T>(i);
  } else if constexpr (std::is_floating_point_v<T>) {
    double d;
    if (!n.IsScalar() || !parse_float(n.Scalar(), d)) return bad("a number");
    return static_cast<T>(d);
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (n.IsNull()) return std::string();
    if (!n.IsScalar()) return bad("a string");
    return n.Scalar();
  } else {
    using E = typename T::value_type;
    if (!n.IsSequence()) return bad("a list");
    T out;
    for (const auto& e : n) {
      if constexpr (std::is_integral_v<E>) {
        int64_t i;
        if (!e.IsScalar() || !parse_int(e.Scalar(), i)) return bad("a list of integers");
        out.push_back(static_cast<E>(i));
      } else {
        double d;
        if (!e.IsScalar() || !parse_float(e.Scalar(), d)) return bad("a list of numbers");
        out.push_back(static_cast<E>(d));
      }
    }
    return out;
  }
}

int64_t Config::entries(const std::string& section) const {
  const YAML::Node n = find(root_, section);
  if (!n.IsDefined()) DT_THROW("config: no key '", section, "'");
  return n.IsSequence() ? static_cast<int64_t>(n.size()) : 1;
}

template int64_t Config::get<int64_t>(const std::string&) const;
template int Config::get<int>(const std::string&) const;
template double Config::get<double>(const std::string&) const;
template float Config::get<float>(const std::string&) const;
template bool Config::get<bool>(const std::string&) const;
template std::string Config::get<std::string>(const std::string&) const;
template std::vector<double> Config::get<std::vector<double>>(const std::string&) const;
template std::vector<float> Config::get<std::vector<float>>(const std::string&) const;
template std::vector<int64_t> Config::get<std::vector<int64_t>>(const std::string&) const;

std::string Config::dump() const {
  YAML::Emitter out;
  out << root_;
  DT_CHECK(out.good(), "config: cannot emit YAML: ", out.GetLastError());
  return std::string(out.c_str()) + "\n";
}

void Config::save(const std::string& path) const { write_text_atomic(path, dump()); }

std::string Config::hash() const {
  // Keys that change how a run executes, not what it computes, are left out, so a
  // finished run is reused whatever thread count, logging interval or device asked for it.
  Config result_only(*this);
  for (const char* key : {"threads", "log_every", "device"}) result_only.root_.remove(key);
  result_only.root_["data"].remove("workers");
  // Keys added after runs were made, at the value that computes what those runs computed,
  // are left out too, so the hashes of finished runs stay valid (a demo resumes them).
  for (const auto& [section, key, was] : {std::tuple<const char*, const char*, const char*>{"optim", "precision", "fp32"},
                                          {"compat", "proto_margin_unit", "absolute"},
                                          {"model", "init", ""},
                                          {"model", "init_strict", "true"},
                                          {"model", "path", ""}})
    if (get<std::string>(std::string(section) + "." + key) == was) result_only.root_[section].remove(key);
  const std::string text = result_only.dump();
  uint64_t h = 14695981039346656037ull;  // FNV-1a 64 offset basis
  for (unsigned char ch : text) {
    h ^= ch;
    h *= 1099511628211ull;  // FNV prime
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace dualtune::config

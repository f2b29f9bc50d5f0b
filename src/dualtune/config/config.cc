// Config: schema defaults <- _BASE_ chain <- file <- overrides, then validate().
//
// Every value that enters the tree is checked against the schema node of the same
// key: maps must stay maps, lists lists, and scalars must parse as the default's
// kind (bool, integer, number, string). Values are stored in canonical form
// (integers and numbers re-printed) so dump() and hash() do not depend on how a
// user spelled "1e-3" versus "0.001".
#include "dualtune/config/config.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <set>
#include <sstream>
#include <tuple>

#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"

namespace fs = std::filesystem;

namespace dualtune::config {
namespace {

enum class Kind { Bool, Int, Float, String, List, Map };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::Bool: return "a boolean (true/false)";
    case Kind::Int: return "an integer";
    case Kind::Float: return "a number";
    case Kind::String: return "a string";
    case Kind::List: return "a list";
    case Kind::Map: return "a map";
  }
  return "?";
}

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

bool is_quoted(const YAML::Node& n) { return n.Tag() == "!"; }

/// Kind of a schema default (the schema spells integers without a dot).
Kind schema_kind(const YAML::Node& n) {
  if (n.IsMap()) return Kind::Map;
  if (n.IsSequence()) return Kind::List;
  if (is_quoted(n)) return Kind::String;
  const std::string& s = n.Scalar();
  bool b;
  int64_t i;
  double d;
  if (parse_bool(s, b)) return Kind::Bool;
  if (parse_int(s, i)) return Kind::Int;
  if (parse_float(s, d)) return Kind::Float;
  return Kind::String;
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

std::string join_keys(const YAML::Node& map) {
  std::string out;
  for (const auto& kv : map) {
    if (!out.empty()) out += ", ";
    out += kv.first.Scalar();
  }
  return out;
}

/// Canonical copy of a scalar value `v` for a schema scalar of kind `k`; throws on mismatch.
YAML::Node canonical_scalar(Kind k, const YAML::Node& v, const std::string& key, const std::string& source) {
  auto mismatch = [&]() {
    DT_THROW("config ", source, ": key '", key, "' expects ", kind_name(k), ", found ", found_text(v));
  };
  if (!v.IsScalar() && !(v.IsNull() && k == Kind::String)) mismatch();
  if (k == Kind::String) {
    YAML::Node n(v.IsNull() ? std::string() : v.Scalar());
    return n;
  }
  const std::string& s = v.Scalar();
  if (is_quoted(v)) mismatch();  // "3" where a number is expected is a string
  if (k == Kind::Bool) {
    bool b;
    if (!parse_bool(s, b)) mismatch();
    return YAML::Node(b);
  }
  if (k == Kind::Int) {
    int64_t i;
    if (!parse_int(s, i)) mismatch();
    return YAML::Node(std::to_string(i));
  }
  double d;
  if (!parse_float(s, d)) mismatch();
  return YAML::Node(format_float(d));
}

/// Canonical copy of list `v` whose schema default is `def` (all schema lists are numeric).
YAML::Node canonical_list(const YAML::Node& def, const YAML::Node& v, const std::string& key,
                          const std::string& source) {
  Kind elem = Kind::Float;
  if (def.size() > 0) elem = schema_kind(def[0]);
  if (key == "optim.milestones") elem = Kind::Int;
  YAML::Node out(YAML::NodeType::Sequence);
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].IsScalar())
      DT_THROW("config ", source, ": key '", key, "' expects a list of ", kind_name(elem), " values, found ",
               found_text(v[i]), " at position ", i);
    out.push_back(canonical_scalar(elem, v[i], key + "[" + std::to_string(i) + "]", source));
  }
  out.SetStyle(YAML::EmitterStyle::Flow);
  return out;
}

/// Sections that may also be a list of entries of the same schema (several old models).
bool top_level_repeatable(const std::string& key) { return key == "old"; }

/// Merges `src` into `dst` (both maps at dotted prefix `prefix`), checking every key
/// against the schema map `schema`. Maps merge recursively; scalars and lists replace.
void merge_checked(YAML::Node dst, const YAML::Node& src, const YAML::Node& schema, const std::string& prefix,
                   const std::string& source, bool top_level) {
  for (const auto& kv : src) {
    const std::string name = kv.first.Scalar();
    if (top_level && name == "_BASE_") continue;
    const std::string key = prefix.empty() ? name : prefix + "." + name;
    const YAML::Node def = schema[name];
    if (!def.IsDefined()) {
      DT_THROW("unknown key '", key, "' in ", source, "; valid keys ",
               prefix.empty() ? std::string("at the top level") : "in '" + prefix + "'", ": ", join_keys(schema));
    }
    const YAML::Node& v = kv.second;
    const Kind k = schema_kind(def);
    if (k == Kind::Map && top_level_repeatable(key) && v.IsSequence()) {
      // A list of entries, each a map of the section's schema merged onto its defaults.
      // One entry is stored as the plain map, so `old: {path: x}` and `old: [{path: x}]`
      // resolve (and hash) the same.
      YAML::Node list(YAML::NodeType::Sequence);
      for (size_t i = 0; i < v.size(); ++i) {
        const std::string at = key + "[" + std::to_string(i) + "]";
        if (!v[i].IsMap()) DT_THROW("config ", source, ": key '", at, "' expects a map, found ", found_text(v[i]));
        YAML::Node entry = YAML::Clone(def);
        merge_checked(entry, def, def, at, "schema", false);
        merge_checked(entry, v[i], def, at, source, false);
        list.push_back(entry);
      }
      if (list.size() == 0) {
        YAML::Node entry = YAML::Clone(def);
        merge_checked(entry, def, def, key, "schema", false);
        dst[name] = entry;
      } else {
        dst[name] = list.size() == 1 ? list[0] : list;
      }
    } else if (k == Kind::Map) {
      if (v.IsNull()) continue;  // "data:" with nothing under it
      if (!v.IsMap()) DT_THROW("config ", source, ": key '", key, "' expects a map, found ", found_text(v));
      if (dst[name].IsSequence())
        DT_THROW("config ", source, ": '", key, "' is a list of ", dst[name].size(), " entries here; set the whole list "
                 "(", key, "=[{path: a}, {path: b}]) instead of one key of it");
      merge_checked(dst[name], v, def, key, source, false);
    } else if (k == Kind::List) {
      if (!v.IsSequence()) DT_THROW("config ", source, ": key '", key, "' expects a list, found ", found_text(v));
      dst[name] = canonical_list(def, v, key, source);
    } else {
      dst[name] = canonical_scalar(k, v, key, source);
    }
  }
}

const YAML::Node& schema_root() {
  static const YAML::Node schema = YAML::Load(schema_yaml());
  return schema;
}

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

YAML::Node load_yaml_file(const std::string& path) {
  try {
    return YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    DT_THROW("cannot open config file ", path);
  } catch (const YAML::Exception& e) {
    DT_THROW("config file ", path, ": YAML syntax error at line ", e.mark.line + 1, ", column ", e.mark.column + 1,
             ": ", e.msg);
  }
}

YAML::Node load_yaml_string(const std::string& text, const std::string& source) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    DT_THROW("config ", source, ": YAML syntax error at line ", e.mark.line + 1, ", column ", e.mark.column + 1,
             ": ", e.msg);
  }
}

// Applies a parsed document (and, first, its _BASE_ chain) onto root.
void apply_document(YAML::Node root, const YAML::Node& doc, const std::string& source, const fs::path& dir,
                    std::vector<std::string>& stack);

void apply_file(YAML::Node root, const fs::path& path, std::vector<std::string>& stack) {
  std::error_code ec;
  fs::path canon = fs::weakly_canonical(path, ec);
  if (ec) canon = path;
  const std::string id = canon.string();
  for (const auto& s : stack) {
    if (s == id) {
      std::string chain;
      for (const auto& t : stack) chain += t + " -> ";
      DT_THROW("cycle in _BASE_ chain: ", chain, id);
    }
  }
  stack.push_back(id);
  const YAML::Node doc = load_yaml_file(path.string());
  apply_document(root, doc, path.string(), canon.parent_path(), stack);
  stack.pop_back();
}

void apply_document(YAML::Node root, const YAML::Node& doc, const std::string& source, const fs::path& dir,
                    std::vector<std::string>& stack) {
  if (doc.IsNull() || !doc.IsDefined()) return;  // empty file
  if (!doc.IsMap()) DT_THROW("config ", source, ": expected a map of keys at the top level, found ", found_text(doc));
  const YAML::Node base = doc["_BASE_"];
  if (base.IsDefined() && !base.IsNull()) {
    std::vector<std::string> bases;
    if (base.IsScalar()) {
      bases.push_back(base.Scalar());
    } else if (base.IsSequence()) {
      for (const auto& b : base) {
        if (!b.IsScalar()) DT_THROW("config ", source, ": _BASE_ expects file names, found ", found_text(b));
        bases.push_back(b.Scalar());
      }
    } else {
      DT_THROW("config ", source, ": _BASE_ expects a file name or a list of file names, found a map");
    }
    for (const auto& b : bases) {
      fs::path p(b);
      if (p.is_relative()) p = dir / p;
      apply_file(root, p, stack);
    }
  }
  merge_checked(root, doc, schema_root(), "", source, true);
}

void check(bool ok, const std::string& key, const std::string& what, const std::string& found) {
  if (!ok) DT_THROW("config key '", key, "': expected ", what, ", found ", found);
}

std::string num(double d) { return format_float(d); }

/// {parts[i]: {parts[i+1]: ... value}}
YAML::Node nest(const std::vector<std::string>& parts, size_t i, const YAML::Node& value) {
  YAML::Node m(YAML::NodeType::Map);
  m[parts[i]] = i + 1 == parts.size() ? value : nest(parts, i + 1, value);
  return m;
}

}  // namespace

Config::Config() : root_(YAML::Clone(schema_root())) {
  // Canonicalise the defaults exactly as user values are (same dump for same values).
  merge_checked(root_, schema_root(), schema_root(), "", "schema", true);
}

Config::Config(const Config& other) : root_(YAML::Clone(other.root_)) {}

Config& Config::operator=(const Config& other) {
  if (this != &other) root_.reset(YAML::Clone(other.root_));  // deep copy, never shared
  return *this;
}

Config Config::load(const std::string& path, const std::vector<std::string>& overrides) {
  Config c;
  std::vector<std::string> stack;
  apply_file(c.root_, fs::path(path), stack);
  for (const auto& o : overrides) c.set(o);
  c.validate();
  return c;
}

Config Config::from_string(const std::string& yaml, const std::vector<std::string>& overrides) {
  Config c;
  std::vector<std::string> stack;
  const YAML::Node doc = load_yaml_string(yaml, "<string>");
  apply_document(c.root_, doc, "<string>", fs::current_path(), stack);
  for (const auto& o : overrides) c.set(o);
  c.validate();
  return c;
}

void Config::set(const std::string& assignment) {
  const std::string source = "override '" + assignment + "'";
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    DT_THROW("config ", source, ": expected 'section.key=value', found no '='");
  const std::string key = assignment.substr(0, eq);
  const std::string text = assignment.substr(eq + 1);
  YAML::Node value = text.empty() ? YAML::Node(YAML::NodeType::Null) : load_yaml_string(text, source);
  // Build {a: {b: {c: value}}} and merge it like a file.
  std::vector<std::string> parts;
  std::stringstream ss(key);
  std::string part;
  while (std::getline(ss, part, '.')) {
    if (part.empty()) DT_THROW("config ", source, ": empty component in key '", key, "'");
    parts.push_back(part);
  }
  if (parts.empty()) DT_THROW("config ", source, ": empty key");
  merge_checked(root_, nest(parts, 0, value), schema_root(), "", source, false);
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

void Config::validate() const {
  auto i64 = [&](const char* k) { return get<int64_t>(k); };
  auto dbl = [&](const char* k) { return get<double>(k); };
  auto str = [&](const char* k) { return get<std::string>(k); };
  auto at_least = [&](const char* k, int64_t lo) {
    const int64_t v = i64(k);
    check(v >= lo, k, ">= " + std::to_string(lo), std::to_string(v));
  };
  auto one_of = [&](const char* k, std::initializer_list<const char*> values) {
    const std::string v = str(k);
    std::string list;
    for (const char* s : values) {
      if (v == s) return;
      list += list.empty() ? "" : ", ";
      list += s;
    }
    check(false, k, "one of {" + list + "}", "'" + v + "'");
  };
  auto in_unit = [&](const char* k) {
    const double v = dbl(k);
    check(v >= 0.0 && v <= 1.0, k, "a fraction in [0, 1]", num(v));
  };

  at_least("threads", 0);
  at_least("log_every", 1);
  at_least("optim.epochs", 1);
  at_least("optim.batch_size", 1);
  at_least("optim.warmup_epochs", 0);
  at_least("data.height", 1);
  at_least("data.width", 1);
  at_least("data.channels", 1);
  at_least("data.workers", 0);
  at_least("data.limit", 0);
  at_least("data.p", 1);
  at_least("data.k", 1);
  at_least("augment.pad", 0);
  at_least("model.embedding_dim", 0);
  at_least("transform.width", 1);
  at_least("transform.depth", 1);
  at_least("transform.epochs", 1);
  at_least("transform.batch_size", 2);
  at_least("transform.augmented_passes", 0);
  at_least("transform.side_dim", 0);

  {
    const double lr = dbl("optim.lr");
    check(lr > 0.0, "optim.lr", "> 0", num(lr));
    const double wd = dbl("optim.weight_decay");
    check(wd >= 0.0, "optim.weight_decay", ">= 0", num(wd));
    const double mom = dbl("optim.momentum");
    check(mom >= 0.0 && mom < 1.0, "optim.momentum", "a value in [0, 1)", num(mom));
    const double gamma = dbl("optim.gamma");
    check(gamma > 0.0, "optim.gamma", "> 0", num(gamma));
    const auto ms = get<std::vector<int64_t>>("optim.milestones");
    for (size_t i = 0; i < ms.size(); ++i) {
      check(ms[i] >= 1, "optim.milestones", "epochs >= 1", std::to_string(ms[i]));
      if (i > 0) check(ms[i] > ms[i - 1], "optim.milestones", "strictly increasing epochs",
                       std::to_string(ms[i - 1]) + " then " + std::to_string(ms[i]));
    }
  }

  // Every loss weight is >= 0 (0 switches its term off).
  for (const char* section : {"loss", "compat"}) {
    for (const auto& kv : root_[section]) {
      const std::string name = kv.first.Scalar();
      const bool is_weight = name == "weight" || name == "triplet" ||
                             (name.size() > 7 && name.compare(name.size() - 7, 7, "_weight") == 0);
      if (!is_weight) continue;
      const std::string key = std::string(section) + "." + name;
      const double v = get<double>(key);
      check(v >= 0.0, key, "a weight >= 0", num(v));
    }
  }
  {
    const double ls = dbl("loss.label_smoothing");
    check(ls >= 0.0 && ls < 1.0, "loss.label_smoothing", "a value in [0, 1)", num(ls));
    const double s = dbl("loss.scale");
    check(s > 0.0, "loss.scale", "> 0", num(s));
    const double m = dbl("loss.margin");
    check(m >= 0.0, "loss.margin", ">= 0", num(m));
    const double tm = dbl("loss.triplet_margin");
    check(tm >= 0.0, "loss.triplet_margin", ">= 0", num(tm));
    const double pm = dbl("compat.proto_margin");
    check(pm >= 0.0, "compat.proto_margin", ">= 0", num(pm));
    const double ps = dbl("compat.proto_scale");
    check(ps > 0.0, "compat.proto_scale", "> 0", num(ps));
    const double ct = dbl("compat.contrast_temperature");
    check(ct > 0.0, "compat.contrast_temperature", "> 0", num(ct));
  }
  {
    const double lr = dbl("transform.lr");
    check(lr > 0.0, "transform.lr", "> 0", num(lr));
    const double wd = dbl("transform.weight_decay");
    check(wd >= 0.0, "transform.weight_decay", ">= 0", num(wd));
    const double h = dbl("transform.holdout");
    check(h >= 0.0 && h < 1.0, "transform.holdout", "a fraction in [0, 1)", num(h));
  }
  in_unit("compat.mix_rho");
  in_unit("augment.erasing");

  {
    const int64_t c = i64("data.channels");
    const auto mean = get<std::vector<double>>("data.mean");
    const auto stdv = get<std::vector<double>>("data.std");
    check(static_cast<int64_t>(mean.size()) == c, "data.mean", std::to_string(c) + " values (data.channels)",
          std::to_string(mean.size()));
    check(static_cast<int64_t>(stdv.size()) == c, "data.std", std::to_string(c) + " values (data.channels)",
          std::to_string(stdv.size()));
    for (double s : stdv) check(s > 0.0, "data.std", "values > 0", num(s));
  }

  one_of("data.format", {"idx", "image_folder", "market1501"});
  one_of("data.sampler", {"random", "pk"});
  one_of("model.backbone", {"convnet-s", "convnet-m", "resnet18", "resnet50"});
  one_of("loss.type", {"softmax", "cosface", "arcface"});
  one_of("optim.name", {"adam", "sgd"});
  one_of("optim.schedule", {"cosine", "multistep", "constant"});
  one_of("optim.precision", {"fp32", "bf16"});
  one_of("compat.method", {"independent", "l2", "bct", "dual-tuning"});
  one_of("compat.proto_form", {"triplet", "softmax", "regress"});
  one_of("compat.proto_margin_unit", {"absolute", "spacing"});

  const std::string method = str("compat.method");
  const int64_t olds = entries("old");
  for (int64_t i = 0; i < olds; ++i) {
    const std::string at = olds > 1 ? "old." + std::to_string(i) + "." : "old.";
    if (method != "independent")
      check(!str((at + "path").c_str()).empty(), at + "path",
            "an old model (run directory or TorchScript file) for compat.method '" + method + "'", "an empty path");
    const double w = dbl((at + "weight").c_str());
    check(w >= 0.0, at + "weight", "a weight >= 0", num(w));
  }
  if (dbl("loss.triplet") > 0.0)
    check(str("data.sampler") == "pk", "data.sampler", "'pk' because loss.triplet > 0 needs P x K batches",
          "'" + str("data.sampler") + "'");
}

std::string Config::dump() const {
  YAML::Emitter out;
  out << root_;
  DT_CHECK(out.good(), "config: cannot emit YAML: ", out.GetLastError());
  return std::string(out.c_str()) + "\n";
}

void Config::save(const std::string& path) const { write_text_atomic(path, dump()); }

std::string Config::hash() const {
  // Keys that change how a run executes, not what it computes, are left out, so a
  // finished run is reused whatever thread count or logging interval asked for it.
  Config result_only(*this);
  for (const char* key : {"threads", "log_every"}) result_only.root_.remove(key);
  result_only.root_["data"].remove("workers");
  // Keys added after runs were made, at the value that computes what those runs computed,
  // are left out too, so the hashes of finished runs stay valid (a demo resumes them).
  for (const auto& [section, key, was] : {std::tuple<const char*, const char*, const char*>{"optim", "precision", "fp32"},
                                          {"compat", "proto_margin_unit", "absolute"}})
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

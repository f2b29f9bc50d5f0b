#pragma once
// YAML configuration, FastReID style:
//   - every key has a default in the schema (schema.cc); a key not in the schema is an
//     error naming it and listing the valid keys of its section (catches typos);
//   - a file may start from others with `_BASE_: other.yml` (path relative to the file;
//     a string or a list, merged left to right; maps merge recursively, scalars and
//     lists are replaced);
//   - command-line overrides `section.key=value` (value parsed as YAML) come last;
//   - the resolved config is validated (ranges, enums) and saved into the run directory.
#include <cstdint>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

namespace dualtune::config {

class Config {
 public:
  /// Defaults only.
  Config();
  /// Deep copies (a YAML::Node alone is a shared reference).
  Config(const Config& other);
  Config& operator=(const Config& other);
  /// defaults <- _BASE_ chain <- file <- overrides, then validate(). Throws dualtune::Error.
  static Config load(const std::string& path, const std::vector<std::string>& overrides = {});
  /// defaults <- yaml text <- overrides (used by demo and tests).
  static Config from_string(const std::string& yaml, const std::vector<std::string>& overrides = {});

  /// Applies one `a.b.c=value` override; unknown key -> error.
  void set(const std::string& assignment);

  /// Typed access by dotted key ("optim.lr"); throws naming the key if absent or of the wrong type.
  /// A list section is indexed by position: "old.1.path" (a plain map is entry 0).
  template <class T>
  T get(const std::string& dotted) const;

  /// Entries of a section that may be a list (old:): its length, or 1 for a plain map.
  int64_t entries(const std::string& section) const;

  /// Checks ranges and enums (epochs >= 1, batch_size >= 1, lr > 0, weights >= 0,
  /// fractions in [0,1], method/backbone/... in their sets). Throws naming the key.
  void validate() const;

  /// Resolved config as YAML text (stable key order = schema order).
  std::string dump() const;
  /// Writes dump() atomically.
  void save(const std::string& path) const;
  /// Hex digest (FNV-1a 64) of dump() without the execution-only keys (threads,
  /// log_every, data.workers), used to decide whether a finished run can be reused.
  std::string hash() const;

  const YAML::Node& root() const { return root_; }

 private:
  YAML::Node root_;
};

/// The schema: every valid key with its default value (YAML text).
const char* schema_yaml();

}  // namespace dualtune::config

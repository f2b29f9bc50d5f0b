#pragma once
// ClassMap: dense label <-> class name. Saved as JSON with every run
// ({"classes": ["name0", "name1", ...]}: index = dense label).
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace dualtune::data {

class ClassMap {
 public:
  ClassMap() = default;
  explicit ClassMap(std::vector<std::string> names);  ///< throws on duplicate names
  size_t size() const { return names_.size(); }
  const std::string& name(int64_t label) const;       ///< throws if out of range
  std::optional<int64_t> label(const std::string& name) const;
  const std::vector<std::string>& names() const { return names_; }

  std::string to_json() const;
  static ClassMap from_json(const std::string& text, const std::string& source);  ///< source names the file in errors
  void save(const std::string& path) const;                                       ///< atomic
  static ClassMap load(const std::string& path);

 private:
  std::vector<std::string> names_;
  std::unordered_map<std::string, int64_t> index_;
};

/// n2o: for every new label, the old label of the class with the same name, or -1
/// if the old model never saw that class.
std::vector<int64_t> n2o_label_map(const ClassMap& new_classes, const ClassMap& old_classes);

}  // namespace dualtune::data

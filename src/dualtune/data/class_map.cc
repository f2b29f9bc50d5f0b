// ClassMap JSON: {"classes": ["name0", "name1", ...]}; the array index is the dense label.
#include "dualtune/data/class_map.h"

#include <nlohmann/json.hpp>

#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"

namespace dualtune::data {

ClassMap::ClassMap(std::vector<std::string> names) : names_(std::move(names)) {
  index_.reserve(names_.size());
  for (size_t i = 0; i < names_.size(); ++i) {
    const bool inserted = index_.emplace(names_[i], static_cast<int64_t>(i)).second;
    DT_CHECK(inserted, "class map: duplicate class name '", names_[i], "' (labels ", index_.at(names_[i]), " and ", i,
             ")");
  }
}

const std::string& ClassMap::name(int64_t label) const {
  DT_CHECK(label >= 0 && label < static_cast<int64_t>(names_.size()), "class map: label ", label,
           " out of range [0, ", names_.size(), ")");
  return names_[static_cast<size_t>(label)];
}

std::optional<int64_t> ClassMap::label(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

std::string ClassMap::to_json() const {
  nlohmann::json j;
  j["classes"] = names_;
  return j.dump(1) + "\n";
}

ClassMap ClassMap::from_json(const std::string& text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    DT_THROW("class map ", source, ": invalid JSON: ", e.what());
  }
  DT_CHECK(j.is_object() && j.contains("classes"), "class map ", source,
           ": expected an object with key \"classes\", found ", j.type_name());
  const auto& arr = j["classes"];
  DT_CHECK(arr.is_array(), "class map ", source, ": expected \"classes\" to be an array of strings, found ",
           arr.type_name());
  std::vector<std::string> names;
  names.reserve(arr.size());
  for (size_t i = 0; i < arr.size(); ++i) {
    DT_CHECK(arr[i].is_string(), "class map ", source, ": expected class ", i, " to be a string, found ",
             arr[i].type_name());
    names.push_back(arr[i].get<std::string>());
  }
  try {
    return ClassMap(std::move(names));
  } catch (const Error& e) {
    DT_THROW("class map ", source, ": ", e.what());
  }
}

void ClassMap::save(const std::string& path) const { write_text_atomic(path, to_json()); }

ClassMap ClassMap::load(const std::string& path) { return from_json(read_file(path), path); }

std::vector<int64_t> n2o_label_map(const ClassMap& new_classes, const ClassMap& old_classes) {
  std::vector<int64_t> map(new_classes.size(), -1);
  for (size_t i = 0; i < new_classes.size(); ++i) {
    if (auto old = old_classes.label(new_classes.names()[i])) map[i] = *old;
  }
  return map;
}

}  // namespace dualtune::data

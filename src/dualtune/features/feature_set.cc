#include "dualtune/features/feature_set.h"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "dualtune/features/npy.h"
#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"

namespace fs = std::filesystem;

namespace dualtune::features {
namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

/// Reads an int64 vector of length n from a 1-D <i8 npy file.
std::vector<int64_t> load_i64_vector(const std::string& path, int64_t n) {
  npy::Array a = npy::load(path);
  DT_CHECK(a.descr == "<i8", path, ": expected dtype <i8 (int64), found ", a.descr);
  DT_CHECK(a.shape.size() == 1 && a.shape[0] == n, path, ": expected shape (", n, ",), found ", shape_str(a.shape));
  return std::move(a.i64);
}

std::vector<std::string> load_paths(const std::string& path, int64_t n) {
  const std::string text = read_file(path);
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  DT_CHECK(static_cast<int64_t>(lines.size()) == n, path, ": expected ", n, " lines (one path per feature row), found ",
           lines.size());
  return lines;
}

std::vector<std::string> load_class_names(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    DT_THROW(path, ": invalid JSON: ", e.what());
  }
  DT_CHECK(j.is_object() && j.contains("classes") && j["classes"].is_array(), path,
           ": expected an object {\"classes\": [names...]}, found ", j.type_name());
  std::vector<std::string> names;
  for (size_t i = 0; i < j["classes"].size(); ++i) {
    const auto& v = j["classes"][i];
    DT_CHECK(v.is_string(), path, ": classes[", i, "]: expected a string, found ", v.type_name());
    names.push_back(v.get<std::string>());
  }
  return names;
}

}  // namespace

void FeatureSet::check() const {
  DT_CHECK(n >= 0 && d >= 0, "FeatureSet: expected n, d >= 0, found n = ", n, ", d = ", d);
  DT_CHECK(static_cast<int64_t>(features.size()) == n * d, "FeatureSet: expected ", n, " x ", d, " = ", n * d,
           " feature values, found ", features.size());
  DT_CHECK(static_cast<int64_t>(labels.size()) == n, "FeatureSet: expected ", n, " labels, found ", labels.size());
  DT_CHECK(cams.empty() || static_cast<int64_t>(cams.size()) == n, "FeatureSet: expected ", n,
           " cams (or none), found ", cams.size());
  DT_CHECK(paths.empty() || static_cast<int64_t>(paths.size()) == n, "FeatureSet: expected ", n,
           " paths (or none), found ", paths.size());
  for (int64_t i = 0; i < n; ++i) {
    DT_CHECK(labels[i] >= -1, "FeatureSet: row ", i, ": expected label >= -1, found ", labels[i]);
    DT_CHECK(class_names.empty() || labels[i] < static_cast<int64_t>(class_names.size()), "FeatureSet: row ", i,
             ": expected label < ", class_names.size(), " (number of class names), found ", labels[i]);
    for (int64_t k = 0; k < d; ++k) {
      DT_CHECK(std::isfinite(features[i * d + k]), "FeatureSet: row ", i, " component ", k,
               ": expected a finite value, found ", features[i * d + k]);
    }
  }
  for (const auto& p : paths) DT_CHECK(p.find('\n') == std::string::npos, "FeatureSet: path contains a newline: ", p);
}

void FeatureSet::save(const std::string& dir) const {
  check();
  ensure_writable_dir(dir);
  const fs::path root(dir);
  npy::save_f32((root / "features.npy").string(), features.data(), {n, d});
  npy::save_i64((root / "labels.npy").string(), labels.data(), {n});
  if (!cams.empty()) npy::save_i64((root / "cams.npy").string(), cams.data(), {n});
  if (!paths.empty()) {
    std::string text;
    for (const auto& p : paths) text += p + "\n";
    write_text_atomic((root / "paths.txt").string(), text);
  }
  if (!class_names.empty()) {
    write_text_atomic((root / "classes.json").string(), nlohmann::json{{"classes", class_names}}.dump(2) + "\n");
  }
}

FeatureSet FeatureSet::load(const std::string& dir, bool labels_required) {
  const fs::path root(dir);
  DT_CHECK(fs::is_directory(root), "feature directory ", dir, ": expected a directory with features.npy and labels.npy",
           ", found ", fs::exists(root) ? "a file" : "nothing");
  FeatureSet s;
  const std::string fpath = (root / "features.npy").string();
  npy::Array f = npy::load(fpath);
  DT_CHECK(f.descr == "<f4", fpath, ": expected dtype <f4 (float32), found ", f.descr);
  DT_CHECK(f.shape.size() == 2, fpath, ": expected a 2-D array (n, d), found shape ", shape_str(f.shape));
  s.n = f.shape[0];
  s.d = f.shape[1];
  s.features = std::move(f.f32);
  for (int64_t i = 0; i < s.n; ++i) {
    for (int64_t k = 0; k < s.d; ++k) {
      const float v = s.features[i * s.d + k];
      DT_CHECK(std::isfinite(v), fpath, ": row ", i, " component ", k, ": expected a finite value, found ", v);
    }
  }
  const fs::path labels = root / "labels.npy";
  s.labels = labels_required || fs::exists(labels) ? load_i64_vector(labels.string(), s.n) : std::vector<int64_t>(s.n, -1);
  const fs::path cams = root / "cams.npy";
  s.cams = fs::exists(cams) ? load_i64_vector(cams.string(), s.n) : std::vector<int64_t>(s.n, -1);
  const fs::path paths = root / "paths.txt";
  s.paths = fs::exists(paths) ? load_paths(paths.string(), s.n) : std::vector<std::string>(s.n);
  const fs::path classes = root / "classes.json";
  if (fs::exists(classes)) s.class_names = load_class_names(classes.string());
  try {
    s.check();
  } catch (const Error& e) {
    DT_THROW("feature directory ", dir, ": ", e.what());
  }
  return s;
}

}  // namespace dualtune::features

#include "dualtune/features/feature_set.h"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "dualtune/features/npy.h"
#include "dualtune/features/npz.h"
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

/// Features from any accepted float dtype (converted to float32): 2-D, finite.
void take_features(npy::Array a, const std::string& source, FeatureSet& s) {
  DT_CHECK(a.is_float(), source, ": expected float features (float32, float64 or float16), found dtype ",
           npy::dtype_name(a.descr));
  DT_CHECK(a.shape.size() == 2, source, ": expected a 2-D array (n, d), found shape ", shape_str(a.shape));
  s.n = a.shape[0];
  s.d = a.shape[1];
  s.features = std::move(a.f32);
  for (int64_t i = 0; i < s.n; ++i) {
    for (int64_t k = 0; k < s.d; ++k) {
      const float v = s.features[i * s.d + k];
      DT_CHECK(std::isfinite(v), source, ": row ", i, " component ", k, ": expected a finite value, found ", v);
    }
  }
}

/// A vector of n integers from any accepted integer dtype (converted to int64).
std::vector<int64_t> take_integers(npy::Array a, int64_t n, const std::string& source) {
  DT_CHECK(a.is_integer(), source, ": expected integers (int64, int32, uint8, uint16, uint32 or uint64), found dtype ",
           npy::dtype_name(a.descr));
  DT_CHECK(a.shape.size() == 1 && a.shape[0] == n, source, ": expected shape (", n, ",), found ", shape_str(a.shape));
  return std::move(a.i64);
}

/// The arrays np.savez(path, features=..., labels=..., cams=...) writes; other members
/// are ignored (and said so), so an archive may carry more than dualtune reads.
FeatureSet load_npz(const std::string& path) {
  const auto members = npy::npz_members(read_file(path), path);
  auto array = [&](const std::string& key) {
    const std::string source = path + "[" + key + "]";
    npy::Array a = npy::parse(members.at(key), source);
    npy::note_conversions(a, source);
    return std::make_pair(std::move(a), source);
  };
  std::string found, ignored;
  for (const auto& [key, bytes] : members) {
    found += (found.empty() ? "'" : ", '") + key + "'";
    if (key != "features" && key != "labels" && key != "cams") ignored += (ignored.empty() ? "'" : ", '") + key + "'";
  }
  DT_CHECK(members.count("features") && members.count("labels"), path,
           ": expected arrays 'features' and 'labels' (np.savez(path, features=..., labels=...)), found ",
           found.empty() ? "none" : found);
  if (!ignored.empty()) npy::note_once(path, "ignoring arrays " + ignored + " (read: features, labels, cams)");
  FeatureSet s;
  auto [f, fsrc] = array("features");
  take_features(std::move(f), fsrc, s);
  auto [l, lsrc] = array("labels");
  s.labels = take_integers(std::move(l), s.n, lsrc);
  if (members.count("cams")) {
    auto [c, csrc] = array("cams");
    s.cams = take_integers(std::move(c), s.n, csrc);
  } else {
    s.cams.assign(static_cast<size_t>(s.n), -1);
  }
  s.paths.assign(static_cast<size_t>(s.n), "");
  return s;
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
  FeatureSet s;
  if (root.extension() == ".npz" && fs::is_regular_file(root)) {
    s = load_npz(dir);
  } else {
    DT_CHECK(fs::is_directory(root), "feature directory ", dir,
             ": expected a directory with features.npy and labels.npy, or an .npz archive of them, found ",
             fs::exists(root) ? "a file" : "nothing");
    const std::string fpath = (root / "features.npy").string();
    take_features(npy::load(fpath), fpath, s);
    const fs::path lpath = root / "labels.npy";
    s.labels = labels_required || fs::exists(lpath) ? take_integers(npy::load(lpath.string()), s.n, lpath.string())
                                                    : std::vector<int64_t>(s.n, -1);
    const fs::path cams = root / "cams.npy";
    s.cams = fs::exists(cams) ? take_integers(npy::load(cams.string()), s.n, cams.string())
                              : std::vector<int64_t>(s.n, -1);
    const fs::path paths = root / "paths.txt";
    s.paths = fs::exists(paths) ? load_paths(paths.string(), s.n) : std::vector<std::string>(s.n);
    const fs::path classes = root / "classes.json";
    if (fs::exists(classes)) s.class_names = load_class_names(classes.string());
  }
  try {
    s.check();
  } catch (const Error& e) {
    DT_THROW("feature ", fs::is_directory(root) ? "directory " : "archive ", dir, ": ", e.what());
  }
  return s;
}

}  // namespace dualtune::features

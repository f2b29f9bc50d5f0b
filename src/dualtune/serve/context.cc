#include "dualtune/serve/context.h"

#include <stdlib.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <utility>
#include <vector>

#include "dualtune/serve/http_error.h"

namespace fs = std::filesystem;

namespace dualtune::serve {

namespace {
std::unique_ptr<gallery::Gallery> open_reader(const gallery::Gallery& g, const ServiceOptions& so) {
  gallery::OpenOptions o;
  o.read_only = true;
  o.shard = so.shard;
  o.refresh_ms = so.refresh_ms;
  return gallery::Gallery::open(g.location(), o);
}
}  // namespace

Context::Context(gallery::Gallery& g, EmbedderFactory f, ServiceOptions o)
    : writer(g), reader(open_reader(g, o)), gallery(*reader), options(std::move(o)), embedders(g, f), backfill(g, f, options.backfill_nice) {
  std::string tmpl = (fs::temp_directory_path() / "dualtune-serve-XXXXXX").string();
  DT_CHECK(::mkdtemp(tmpl.data()) != nullptr, "serve: cannot create a temporary directory in ",
           fs::temp_directory_path().string());
  tmp_dir = tmpl;
}

Context::~Context() {
  std::error_code ec;
  fs::remove_all(tmp_dir, ec);
}

namespace {
/// The absolute, normalised form of a path, without a trailing separator.
std::string absolute_dir(const std::string& path) {
  std::error_code ec;
  std::string s = fs::absolute(path, ec).lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}
std::string base_name(const std::string& path) { return fs::path(absolute_dir(path)).filename().string(); }
}  // namespace

std::string Context::name() const {
  if (!gallery.cache_dir().empty()) return base_name(gallery.dir());
  // A database gallery: its database name (the URL's path, without the query).
  const std::string& url = gallery.dir();
  const size_t slash = url.find('/', url.find("://") + 3);
  return slash == std::string::npos ? "gallery" : url.substr(slash + 1, url.find('?', slash) - slash - 1);
}

std::string Context::public_text(std::string text) const {
  // (absolute path, what a visitor sees instead); the longest first, so a model file
  // inside the gallery becomes its base name, not "<gallery>/models/...".
  std::vector<std::pair<std::string, std::string>> map;
  auto add = [&map](const std::string& path, const std::string& shown) {
    if (path.empty()) return;
    const std::string a = absolute_dir(path);
    if (a.size() > 1) map.emplace_back(a, shown);  // never "/" itself
  };
  if (gallery.cache_dir().empty()) map.emplace_back(gallery.dir(), name());  // a URL, shown masked
  else add(gallery.dir(), name());
  if (!options.report_dir.empty()) add(options.report_dir, base_name(options.report_dir));
  if (!options.curve_file.empty()) add(fs::path(options.curve_file).parent_path().string(), "curve");
  try {
    for (const auto& m : gallery.models()) add(m.path, base_name(m.path));
  } catch (const std::exception&) {  // an answer about a broken gallery still goes out
  }
  map.emplace_back(tmp_dir, "upload");
  std::error_code ec;
  const std::string cwd = fs::current_path(ec).string();
  if (!ec && cwd.size() > 1) map.emplace_back(cwd + "/", "");
  std::stable_sort(map.begin(), map.end(), [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  auto name_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'; };
  for (const auto& [path, shown] : map) {
    size_t at = text.find(path);
    while (at != std::string::npos) {
      const size_t end = at + path.size();
      if (path.back() == '/' || end == text.size() || !name_char(text[end])) {  // "/a/g" is not in "/a/g2"
        text.replace(at, path.size(), shown);
        at = text.find(path, at + shown.size());
      } else {
        at = text.find(path, at + 1);
      }
    }
  }
  return text;
}

std::string Context::report_dir() const {
  if (options.report_dir.empty() && gallery.cache_dir().empty()) return "";  // a database gallery: --report only
  const std::string dir = options.report_dir.empty() ? gallery.cache_dir() + "/report" : options.report_dir;
  return fs::exists(dir + "/report.json") ? dir : "";
}

std::string Context::curve_file() const {
  if (!options.curve_file.empty()) return fs::exists(options.curve_file) ? options.curve_file : "";
  for (const std::string& f : {gallery.cache_dir().empty() ? "" : gallery.cache_dir() + "/curve/curve.json",
                               report_dir().empty() ? "" : report_dir() + "/transition/curve.json"})
    if (!f.empty() && fs::exists(f)) return f;
  return "";
}

gallery::ModelInfo Context::model(const std::string& name) {
  const auto all = gallery.models();
  std::string names;
  for (const auto& m : all) {
    if (m.name == name) return m;
    names += (names.empty() ? "'" : ", '") + m.name + "' (" + gallery::role_name(m.role) + ")";
  }
  HTTP_THROW(404, "unknown model '", name, "'; this gallery's models are ", names);
}

gallery::ModelInfo Context::query_model(const std::string& name) {
  const gallery::ModelInfo m = name.empty() ? gallery.target_model() : model(name);
  HTTP_CHECK(m.role != gallery::Role::kRetired, 409, "model '", m.name, "' is retired: its embeddings were dropped and "
             "it cannot be queried; expected a deployed or rolling-out model");
  HTTP_CHECK(m.role != gallery::Role::kRolledBack, 409, "model '", m.name, "' was rolled back: its queries are off until "
             "it is rolled out again; expected a deployed or rolling-out model");
  return m;
}

}  // namespace dualtune::serve

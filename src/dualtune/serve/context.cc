#include "dualtune/serve/context.h"

#include <stdlib.h>

#include <filesystem>

#include "dualtune/serve/http_error.h"

namespace fs = std::filesystem;

namespace dualtune::serve {

namespace {
std::unique_ptr<gallery::Gallery> open_reader(const gallery::Gallery& g) {
  gallery::OpenOptions o;
  o.read_only = true;
  return gallery::Gallery::open(g.dir(), o);
}
}  // namespace

Context::Context(gallery::Gallery& g, EmbedderFactory f, ServiceOptions o)
    : writer(g), reader(open_reader(g)), gallery(*reader), options(std::move(o)), embedders(g, f), backfill(g, f, options.backfill_nice) {
  std::string tmpl = (fs::temp_directory_path() / "dualtune-serve-XXXXXX").string();
  DT_CHECK(::mkdtemp(tmpl.data()) != nullptr, "serve: cannot create a temporary directory in ",
           fs::temp_directory_path().string());
  tmp_dir = tmpl;
}

Context::~Context() {
  std::error_code ec;
  fs::remove_all(tmp_dir, ec);
}

std::string Context::report_dir() const {
  const std::string dir = options.report_dir.empty() ? gallery.dir() + "/report" : options.report_dir;
  return fs::exists(dir + "/report.json") ? dir : "";
}

std::string Context::curve_file() const {
  if (!options.curve_file.empty()) return fs::exists(options.curve_file) ? options.curve_file : "";
  for (const std::string& f : {gallery.dir() + "/curve/curve.json", report_dir().empty() ? "" : report_dir() + "/transition/curve.json"})
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
  return m;
}

}  // namespace dualtune::serve

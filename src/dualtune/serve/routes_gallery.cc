// GET /api/status, GET /api/items, GET /api/items/{id}/image, POST /api/items,
// POST /api/models/{name}/retire, POST /api/rollback.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <set>

#include "dualtune/gallery/history_json.h"
#include "dualtune/serve/request.h"
#include "dualtune/serve/routes.h"
#include "dualtune/util/atomic_file.h"

namespace fs = std::filesystem;

namespace dualtune::serve {
namespace {

/// FNV-1a 64 of bytes, as hex: the stable name of an uploaded image.
std::string content_hash(const std::string& bytes) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

nlohmann::json add_report_json(const gallery::AddReport& rep) {
  nlohmann::json failed = nlohmann::json::array();
  for (const auto& [key, err] : rep.failed) failed.push_back({{"key", key}, {"error", err}});
  return {{"added", rep.added}, {"vectors", rep.vectors}, {"skipped", rep.skipped}, {"failed", failed}};
}

/// POST /api/items with JSON: {"model", "items": [{"key", "label"?, "vector": [...]}], "skip_existing"?}.
void add_vectors(Context& ctx, const nlohmann::json& body, httplib::Response& res) {
  const auto& L = ctx.options.limits;
  const JsonFields f(body);
  const gallery::ModelInfo m = ctx.model(f.string("model", ctx.gallery.target_model().name));
  HTTP_CHECK(m.role != gallery::Role::kRetired && m.role != gallery::Role::kRolledBack, 409, "model '", m.name, "' is ",
             gallery::role_name(m.role), "; expected a deployed or rolling-out model");
  const bool skip_existing = f.boolean("skip_existing", false);
  const auto it = body.find("items");
  HTTP_CHECK(it != body.end() && it->is_array() && !it->empty(), 400,
             "expected \"items\": a non-empty array of {\"key\", \"label\", \"vector\"}, found ",
             it == body.end() ? "none" : describe(*it));
  HTTP_CHECK(static_cast<int64_t>(it->size()) <= L.max_add_items, 413, "expected at most ", L.max_add_items,
             " items per request, found ", it->size());
  std::vector<gallery::ItemRecord> records;
  std::vector<float> vectors;
  std::set<std::string> keys;
  for (size_t i = 0; i < it->size(); ++i) {
    const auto& item = (*it)[i];
    const std::string where = "items[" + std::to_string(i) + "]: ";
    HTTP_CHECK(item.is_object(), 400, where, "expected an object {\"key\", \"label\", \"vector\"}, found ", describe(item));
    const JsonFields fi(item, where);
    const std::string key = fi.string("key");
    HTTP_CHECK(!key.empty(), 400, where, "expected a non-empty \"key\"");
    HTTP_CHECK(keys.insert(key).second, 400, where, "key '", key, "' appears twice in the request");
    const auto v = item.find("vector");
    HTTP_CHECK(v != item.end() && v->is_array() && static_cast<int64_t>(v->size()) == m.dim, 400, where,
               "expected \"vector\" with ", m.dim, " numbers (model '", m.name, "' embeds ", m.dim, "), found ",
               v == item.end() ? "none" : v->is_array() ? std::to_string(v->size()) + " values" : describe(*v));
    append_float32(*v, where + "\"vector\"", vectors);
    records.push_back({key, fi.string("label"), -1, 0});
  }
  gallery::AddReport rep;
  try {
    rep = ctx.writer.import_vectors(m.name, records, m.dim, vectors.data(), skip_existing);
  } catch (const gallery::StoreUnreachable&) {
    throw;  // 503, not the 4xx of a bad request
  } catch (const Error& e) {
    HTTP_THROW(409, e.what());  // e.g. a key already in the gallery, a new key for a non-deployed model
  }
  send_json(res, add_report_json(rep));
}

/// POST /api/items with multipart/form-data: files "image" (one or more), optional
/// "label" fields (one per image, or one for all). Each image is stored in
/// DIR/uploads/<hash>.<ext> (its key) and embedded by every active model.
void add_images(Context& ctx, const httplib::Request& req, httplib::Response& res) {
  const auto& L = ctx.options.limits;
  const size_t n = req.files.count("image");
  HTTP_CHECK(n > 0, 400, "expected one or more multipart files named \"image\"");
  HTTP_CHECK(static_cast<int64_t>(n) <= L.max_add_items, 413, "expected at most ", L.max_add_items, " images, found ", n);
  const size_t labels = req.files.count("label");
  HTTP_CHECK(labels == 0 || labels == 1 || labels == n, 400, "expected no \"label\" field, one for all images or one per "
             "image (", n, "), found ", labels);
  std::vector<std::string> label_values;
  for (auto [a, b] = req.files.equal_range("label"); a != b; ++a) label_values.push_back(a->second.content);
  std::vector<std::pair<std::string, std::string>> images;  // (bytes, ext)
  size_t i = 0;
  for (auto [a, b] = req.files.equal_range("image"); a != b; ++a, ++i) {
    HTTP_CHECK(static_cast<int64_t>(a->second.content.size()) <= L.max_image_bytes, 413, "image ", i, " ('",
               a->second.filename, "') has ", a->second.content.size(), " bytes; the limit is ", L.max_image_bytes);
    try {
      images.emplace_back(a->second.content, check_image_bytes(a->second.content));
    } catch (const HttpError& e) {
      HTTP_THROW(e.status, "image ", i, " ('", a->second.filename, "'): ", e.what());
    }
  }
  std::vector<gallery::ModelInfo> active;
  for (const auto& m : ctx.gallery.models())
    if (m.role == gallery::Role::kDeployed || m.role == gallery::Role::kRollingOut) active.push_back(m);
  // Uploaded images live next to the gallery, where its backfill finds them again; a
  // database gallery has no such directory (and its workers may run on other machines).
  HTTP_CHECK(!ctx.gallery.cache_dir().empty(), 501, "gallery ", ctx.gallery.dir(), " is a PostgreSQL database: uploads "
             "need a directory every backfill worker can read; expected images added with `dualtune gallery add` from "
             "shared storage");
  const std::string dir = ctx.gallery.cache_dir() + "/uploads";
  const int64_t source = ctx.writer.add_source(R"({"format":"files"})");
  std::vector<gallery::ItemRecord> records;
  for (size_t j = 0; j < images.size(); ++j) {
    fs::create_directories(dir);
    const std::string path = fs::absolute(dir + "/" + content_hash(images[j].first) + images[j].second).string();
    if (!fs::exists(path)) write_text_atomic(path, images[j].first);
    const std::string label = label_values.empty() ? "" : label_values[label_values.size() == 1 ? 0 : j];
    records.push_back({path, label, -1, source});
  }
  gallery::AddReport rep;
  ctx.embedders.with(active, [&](const auto& list) {
    try {
      rep = ctx.writer.add_images(records, list, 64, false);
    } catch (const gallery::StoreUnreachable&) {
      throw;  // 503, not the 4xx of a bad request
    } catch (const Error& e) {
      HTTP_THROW(409, e.what());  // e.g. the same image already in the gallery (its key is its content hash)
    }
  });
  auto j = add_report_json(rep);
  nlohmann::json keys = nlohmann::json::array();
  for (const auto& r : records) keys.push_back(r.key);
  j["keys"] = keys;
  send_json(res, j);
}

/// What the stored fits (`gallery calibrate`) decide for a model: whether its queries
/// have a score calibration against every version they score (then their default merge
/// is calibrated, else raw: Gallery::resolve_merge) and whether the uncertainty order's
/// predictor is fitted for it.
struct Fits {
  bool calibrated = false;
  bool order_predictor = false;
};

Fits fits_of(gallery::Gallery& g, const gallery::ModelInfo& m) {
  Fits f;
  if (m.role == gallery::Role::kRetired || m.role == gallery::Role::kRolledBack) return f;  // queries nothing
  const auto versions = g.precedence(m.name);
  f.calibrated = std::all_of(versions.begin(), versions.end(),
                             [&](const gallery::VersionInfo& v) { return g.calibration(m.name, v.id).has_value(); });
  f.order_predictor = g.order_predictor(m.name).has_value();
  return f;
}

/// The order POST /api/backfill (and `gallery backfill`) uses when none is named, as
/// Gallery::plan_backfill decides it: the stored plan's ("plan"), else uncertainty when
/// the order predictor is fitted ("predictor"), else random ("no_predictor").
nlohmann::json backfill_order_json(const gallery::GalleryStatus& st, const gallery::ModelInfo* rolling, const Fits& fits) {
  if (!rolling) return nullptr;
  if (!st.backfill.order.empty())
    return {{"model", rolling->name}, {"order", st.backfill.order}, {"from", "plan"}};
  return {{"model", rolling->name},
          {"order", fits.order_predictor ? "uncertainty" : "random"},
          {"from", fits.order_predictor ? "predictor" : "no_predictor"}};
}

}  // namespace

std::string embedding_kind(const gallery::VersionInfo& v, const std::vector<gallery::ModelInfo>& models) {
  if (v.derived_from != 0) return "mapped";
  bool rolling = false;
  gallery::Role role = gallery::Role::kRetired;
  for (const auto& m : models) {
    rolling |= m.role == gallery::Role::kRollingOut;
    if (m.id == v.model_id) role = m.role;
  }
  if (role == gallery::Role::kRollingOut) return "new";
  if (role == gallery::Role::kDeployed) return rolling ? "old" : "current";
  if (role == gallery::Role::kRolledBack) return "rolled_back";
  return "retired";
}

void get_status(Context& ctx, const httplib::Request&, httplib::Response& res) {
  const auto st = ctx.gallery.status();
  std::vector<gallery::ModelInfo> models;
  for (const auto& m : st.models) models.push_back(m.model);
  nlohmann::json jm = nlohmann::json::array(), jv = nlohmann::json::array();
  const gallery::ModelInfo* rolling = nullptr;
  Fits rolling_fits;
  for (const auto& m : st.models) {
    const Fits fits = fits_of(ctx.gallery, m.model);
    if (m.model.role == gallery::Role::kRollingOut) rolling = &m.model, rolling_fits = fits;
    jm.push_back({{"name", m.model.name},
                  {"role", gallery::role_name(m.model.role)},
                  {"dim", m.model.dim},
                  {"embeddings", m.embeddings},
                  {"backfilled", m.backfilled},
                  {"can_embed", !m.model.path.empty()},
                  {"calibrated", fits.calibrated},
                  {"order_predictor", fits.order_predictor},
                  {"merge", m.model.role == gallery::Role::kRetired || m.model.role == gallery::Role::kRolledBack
                                ? nlohmann::json(nullptr)
                            : nlohmann::json(gallery::merge_name(fits.calibrated ? gallery::default_merge()
                                                                                 : gallery::Merge::kRaw))}});
  }
  for (const auto& v : st.versions) {
    std::string model;
    for (const auto& m : models)
      if (m.id == v.version.model_id) model = m.name;
    std::string from;
    for (const auto& w : st.versions)
      if (w.version.id == v.version.derived_from) from = w.version.name;
    jv.push_back({{"name", v.version.name},
                  {"model", model},
                  {"dim", v.version.dim},
                  {"kind", embedding_kind(v.version, models)},
                  {"derived_from", from.empty() ? nlohmann::json(nullptr) : nlohmann::json(from)},
                  {"embeddings", v.embeddings}});
  }
  // The lifecycle, with the probe's paths shown as names like every other path here.
  nlohmann::json history = gallery::history_json(st.history);
  for (auto& e : history)
    if (e["gate"].is_object()) e["gate"]["probe"] = ctx.public_text(e["gate"]["probe"].get<std::string>());
  nlohmann::json gate = nullptr;
  if (const gallery::HistoryEvent* cur = gallery::current_rollout(st))
    for (const auto& e : history)
      if (e["id"] == cur->id) gate = {{"model", cur->model}, {"time", cur->time}, {"gate", e["gate"]}};
  send_json(res, {{"gallery", {{"name", ctx.name()}, {"uuid", st.uuid}, {"items", st.items}}},
                  {"models", jm},
                  {"versions", jv},
                  {"gate", gate},
                  {"history", history},
                  {"query_model", ctx.gallery.target_model().name},
                  {"backfill", backfill_json(ctx)},
                  {"backfill_order", backfill_order_json(st, rolling, rolling_fits)},
                  {"server", {{"writes", !ctx.options.token.empty()},
                              {"report", !ctx.report_dir().empty()},
                              {"curve", !ctx.curve_file().empty()},
                              {"limits", {{"max_k", ctx.options.limits.max_k},
                                          {"max_queries", ctx.options.limits.max_queries},
                                          {"max_image_bytes", ctx.options.limits.max_image_bytes},
                                          {"max_body_bytes", ctx.options.limits.max_body_bytes},
                                          {"max_batch_size", ctx.options.limits.max_batch_size},
                                          {"max_page", ctx.options.limits.max_page}}}}}});
}

void get_items(Context& ctx, const httplib::Request& req, httplib::Response& res) {
  const int64_t offset = int_param(req, "offset", 0, 0, std::numeric_limits<int32_t>::max());
  const int64_t limit = int_param(req, "limit", 50, 1, ctx.options.limits.max_page);
  std::vector<std::vector<int64_t>> versions;
  const auto rows = ctx.gallery.list_items(offset, limit, &versions);
  const auto st_models = ctx.gallery.models();
  std::map<int64_t, std::string> version_names;
  for (const auto& m : st_models) version_names[m.version_id] = m.name;
  std::vector<int64_t> ids;
  for (const auto& r : rows) ids.push_back(r.id);
  const auto refs = ctx.gallery.image_refs(ids);
  nlohmann::json items = nlohmann::json::array();
  for (size_t i = 0; i < rows.size(); ++i) {
    nlohmann::json vs = nlohmann::json::array();
    for (int64_t v : versions[i]) vs.push_back(version_names.count(v) ? version_names[v] : std::to_string(v));
    items.push_back({{"id", rows[i].id},
                     {"key", rows[i].record.key},
                     {"label", rows[i].record.label},
                     {"versions", vs},
                     {"has_image", !refs[i].source.empty()}});
  }
  send_json(res, {{"total", ctx.gallery.status().items}, {"offset", offset}, {"items", items}});
}

void get_item_image(Context& ctx, const httplib::Request& req, httplib::Response& res) {
  const int64_t size = int_param(req, "size", 128, 8, ctx.options.limits.max_thumbnail);
  const std::string text = req.matches[1].str();
  std::vector<gallery::ImageRef> refs;
  try {
    refs = ctx.gallery.image_refs({std::stoll(text)});
  } catch (const gallery::StoreUnreachable&) {
    throw;  // 503, not the 4xx of a bad request
  } catch (const std::exception&) {  // unknown id, or a number out of range
    HTTP_THROW(404, "no item with id ", text);
  }
  const int64_t id = refs[0].item_id;
  std::string png;
  try {
    png = ctx.thumbnails.png(refs[0], static_cast<int>(size));
  } catch (const gallery::StoreUnreachable&) {
    throw;  // 503, not the 4xx of a bad request
  } catch (const Error& e) {
    HTTP_THROW(404, "the image of item ", id, " cannot be shown: ", e.what());
  }
  res.headers.erase("Cache-Control");
  res.set_header("Cache-Control", "private, max-age=300");
  res.set_content(png, "image/png");
}

void post_items(Context& ctx, const httplib::Request& req, httplib::Response& res) {
  if (req.is_multipart_form_data()) add_images(ctx, req, res);
  else add_vectors(ctx, json_body(req), res);
}

void post_retire(Context& ctx, const httplib::Request& req, httplib::Response& res) {
  const gallery::ModelInfo m = ctx.model(req.matches[1].str());
  const auto bf = ctx.backfill.snapshot();
  HTTP_CHECK(bf.state != "running" && bf.state != "pausing", 409, "a backfill is running; expected it to end (or a "
             "pause) before a model is retired");
  try {
    ctx.writer.retire(m.name);
  } catch (const gallery::StoreUnreachable&) {
    throw;  // 503, not the 4xx of a bad request
  } catch (const Error& e) {
    HTTP_THROW(409, e.what());
  }
  send_json(res, {{"retired", m.name}, {"deployed", ctx.gallery.target_model().name}});
}

void post_rollback(Context& ctx, const httplib::Request&, httplib::Response& res) {
  gallery::ModelInfo m;
  try {
    m = ctx.writer.rollback();
  } catch (const gallery::StoreUnreachable&) {
    throw;  // 503, not the 4xx of a bad request
  } catch (const Error& e) {
    HTTP_THROW(409, e.what());  // nothing rolling out, e.g. after the cutover
  }
  // A running backfill of the model is refused its next commit and stops there anyway;
  // the pause only saves it embedding a batch that would be dropped.
  ctx.backfill.pause();
  send_json(res, {{"rolled_back", m.name}, {"deployed", ctx.gallery.target_model().name},
                  {"backfill", backfill_json(ctx)}});
}

}  // namespace dualtune::serve

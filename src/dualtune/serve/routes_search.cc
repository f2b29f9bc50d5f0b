// POST /api/search (posted embeddings, or a gallery item's image) and
// POST /api/search/image (an uploaded image, embedded by the query model).
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include <opencv2/imgcodecs.hpp>

#include "dualtune/serve/request.h"
#include "dualtune/serve/routes.h"
#include "dualtune/util/atomic_file.h"

namespace fs = std::filesystem;

namespace dualtune::serve {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

/// Search options of a request (JSON body or query parameters): k, merge, index.
struct Query {
  gallery::ModelInfo model;
  gallery::SearchOptions options;
};

Query read_query(Context& ctx, const std::string& model, int64_t k, const std::string& merge, const std::string& index) {
  Query q;
  q.model = ctx.query_model(model);
  q.options.k = k;
  HTTP_CHECK(index == "flat" || index == "ivf" || index == "hnsw", 400, "\"index\" must be flat (exact), ivf or hnsw "
             "(approximate), found '", index, "'");
  q.options.index = index;
  if (!merge.empty()) {
    gallery::Merge m;
    try {
      m = gallery::parse_merge(merge);
    } catch (const gallery::StoreUnreachable&) {
      throw;  // 503, not the 4xx of a bad request
    } catch (const Error& e) {
      HTTP_THROW(400, "\"merge\": ", e.what());
    }
    try {
      q.options.merge = ctx.gallery.resolve_merge(q.model.name, m);
    } catch (const gallery::StoreUnreachable&) {
      throw;  // 503, not the 4xx of a bad request
    } catch (const Error& e) {
      HTTP_THROW(409, e.what());
    }
  }
  return q;
}

/// Runs the search and answers with the hits of every query.
void answer(Context& ctx, const Query& q, int64_t nq, const std::vector<float>& vectors, nlohmann::json query_info,
            httplib::Response& res) {
  const auto t0 = Clock::now();
  const auto r = ctx.gallery.search(q.model.name, nq, vectors.data(), q.model.dim, q.options);
  const double search_ms = ms_since(t0);
  std::vector<int64_t> ids;
  for (int64_t id : r.ids)
    if (id >= 0) ids.push_back(id);
  const auto rows = ctx.gallery.items(ids);
  std::map<int64_t, const gallery::ItemRow*> row_of;
  for (const auto& row : rows) row_of[row.id] = &row;
  const auto models = ctx.gallery.models();
  std::map<int64_t, std::pair<std::string, std::string>> version;  // id -> (name, kind)
  for (const auto& v : ctx.gallery.precedence(q.model.name)) version[v.id] = {v.name, embedding_kind(v, models)};
  nlohmann::json results = nlohmann::json::array();
  for (int64_t i = 0; i < nq; ++i) {
    nlohmann::json hits = nlohmann::json::array();
    for (int64_t j = 0; j < r.k; ++j) {
      const size_t p = static_cast<size_t>(i * r.k + j);
      if (r.ids[p] < 0) continue;
      const auto* row = row_of.at(r.ids[p]);
      const auto& v = version[r.versions[p]];
      hits.push_back({{"rank", j + 1},
                      {"id", r.ids[p]},
                      {"key", row->record.key},
                      {"label", row->record.label},
                      {"score", r.scores[p]},
                      {"merge_key", r.keys[p]},
                      {"version", v.first},
                      {"embedding", v.second}});
    }
    results.push_back(hits);
  }
  query_info["search_ms"] = search_ms;
  send_json(res, {{"model", q.model.name},
                  {"merge", gallery::merge_name(r.merge)},
                  {"index", q.options.index},
                  {"k", r.k},
                  {"query", query_info},
                  {"results", results}});
}

/// Query vectors of a JSON body: "vector": [...] (one) or "vectors": [[...], ...].
std::vector<float> posted_vectors(Context& ctx, const nlohmann::json& body, const gallery::ModelInfo& m, int64_t& nq) {
  const bool one = body.contains("vector");
  const nlohmann::json list = one ? nlohmann::json::array({body.at("vector")}) : body.at("vectors");
  HTTP_CHECK(list.is_array() && !list.empty(), 400, "\"vectors\" must be a non-empty array of vectors of ", m.dim,
             " numbers, found ", describe(list));
  HTTP_CHECK(static_cast<int64_t>(list.size()) <= ctx.options.limits.max_queries, 413, "expected at most ",
             ctx.options.limits.max_queries, " query vectors per request, found ", list.size());
  std::vector<float> out;
  out.reserve(list.size() * static_cast<size_t>(m.dim));
  for (size_t i = 0; i < list.size(); ++i) {
    const auto& v = list[i];
    const std::string which = one ? "\"vector\"" : "vector " + std::to_string(i);
    HTTP_CHECK(v.is_array(), 400, which, " must be an array of ", m.dim, " numbers, found ", describe(v));
    HTTP_CHECK(static_cast<int64_t>(v.size()) == m.dim, 400, which, " has dimension ", v.size(), "; model '", m.name,
               "' embeds ", m.dim, " (expected ", m.dim, " numbers)");
    append_float32(v, which, out);
  }
  nq = static_cast<int64_t>(list.size());
  return out;
}

/// The query model's vector of one image; 422 when the model cannot embed it.
std::vector<float> embed_one(Context& ctx, const gallery::ModelInfo& m, const gallery::ImageRef& ref, const std::string& what) {
  std::vector<std::string> errors;
  auto v = ctx.embedders.embed(m, {ref}, errors);
  HTTP_CHECK(errors[0].empty(), 422, what, " cannot be embedded by model '", m.name, "': ", errors[0]);
  return v;
}

}  // namespace

std::string uploaded_image(const httplib::Request& req, const char* field, int64_t max_bytes) {
  const std::string type = req.get_header_value("Content-Type");
  std::string bytes;
  if (req.is_multipart_form_data()) {
    HTTP_CHECK(req.has_file(field), 400, "expected a multipart file field named \"", field, "\"");
    bytes = req.get_file_value(field).content;
  } else {
    HTTP_CHECK(type.rfind("image/", 0) == 0 || type.rfind("application/octet-stream", 0) == 0, 415,
               "expected an image as body (Content-Type image/png, image/jpeg, ... or multipart/form-data with a \"",
               field, "\" file), found ", type.empty() ? "no Content-Type" : "Content-Type " + type);
    bytes = req.body;
  }
  HTTP_CHECK(!bytes.empty(), 400, "expected an image, found an empty body");
  HTTP_CHECK(static_cast<int64_t>(bytes.size()) <= max_bytes, 413, "image of ", bytes.size(),
             " bytes is larger than the limit of ", max_bytes, " bytes");
  return bytes;
}

std::string check_image_bytes(const std::string& bytes) {
  const cv::Mat raw(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data()));
  cv::Mat img;
  try {
    img = cv::imdecode(raw, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception&) {
    img = cv::Mat();
  }
  if (img.empty()) {
    std::string head;
    for (size_t i = 0; i < std::min<size_t>(8, bytes.size()); ++i) {
      char b[4];
      std::snprintf(b, sizeof b, "%02x", static_cast<unsigned char>(bytes[i]));
      head += (i ? " " : "") + std::string(b);
    }
    HTTP_THROW(415, "not an image: the ", bytes.size(), " bytes (starting ", head,
               ") do not decode as PNG, JPEG, BMP or another format OpenCV reads");
  }
  if (bytes.compare(0, 4, "\x89PNG") == 0) return ".png";
  if (bytes.compare(0, 2, "\xff\xd8") == 0) return ".jpg";
  if (bytes.compare(0, 2, "BM") == 0) return ".bmp";
  return ".img";
}

void post_search(Context& ctx, const httplib::Request& req, httplib::Response& res) {
  const auto body = json_body(req);
  const JsonFields f(body);
  const int n_forms = int(body.contains("vector")) + int(body.contains("vectors")) + int(body.contains("item"));
  HTTP_CHECK(n_forms == 1, 400, "expected exactly one query: \"vector\": [...], \"vectors\": [[...], ...] or \"item\": "
             "<id> (a gallery item's image), found ", n_forms);
  const int64_t k = f.integer("k", 10, 1, ctx.options.limits.max_k);
  const Query q = read_query(ctx, f.string("model"), k, f.string("merge"), f.string("index", "flat"));
  if (body.contains("item")) {
    const int64_t id = f.integer("item", 0, std::numeric_limits<int64_t>::max());
    std::vector<gallery::ImageRef> refs;
    try {
      refs = ctx.gallery.image_refs({id});
    } catch (const gallery::StoreUnreachable&) {
      throw;  // 503, not the 4xx of a bad request
    } catch (const Error&) {
      HTTP_THROW(404, "no item with id ", id);
    }
    HTTP_CHECK(!refs[0].source.empty(), 409, "item ", id, " ('", refs[0].key, "') has no image source (its embeddings were "
               "imported): expected an item with an image, or a search with posted embeddings");
    const auto t0 = Clock::now();
    const auto v = embed_one(ctx, q.model, refs[0], "the image of item " + std::to_string(id));
    answer(ctx, q, 1, v, {{"type", "item"}, {"item", id}, {"key", refs[0].key}, {"embed_ms", ms_since(t0)}}, res);
    return;
  }
  int64_t nq = 0;
  const auto v = posted_vectors(ctx, body, q.model, nq);
  answer(ctx, q, nq, v, {{"type", "vectors"}, {"count", nq}}, res);
}

void post_search_image(Context& ctx, const httplib::Request& req, httplib::Response& res) {
  const int64_t k = int_param(req, "k", 10, 1, ctx.options.limits.max_k);
  const Query q = read_query(ctx, string_param(req, "model"), k, string_param(req, "merge"), string_param(req, "index", "flat"));
  const std::string bytes = uploaded_image(req, "image", ctx.options.limits.max_image_bytes);
  const std::string ext = check_image_bytes(bytes);
  HTTP_CHECK(!q.model.path.empty(), 409, "model '", q.model.name, "' has no model file recorded (its embeddings were "
             "imported): it cannot embed an uploaded image; expected a search with posted embeddings");
  static std::atomic<uint64_t> counter{0};
  const std::string path = ctx.tmp_dir + "/query-" + std::to_string(counter++) + ext;
  write_text_atomic(path, bytes);
  struct Remove {
    std::string p;
    ~Remove() {
      std::error_code ec;
      fs::remove(p, ec);
    }
  } remove{path};
  const auto t0 = Clock::now();
  const auto v = embed_one(ctx, q.model, {-1, path, R"({"format":"files"})"}, "the uploaded image");
  answer(ctx, q, 1, v, {{"type", "image"}, {"bytes", bytes.size()}, {"embed_ms", ms_since(t0)}}, res);
}

}  // namespace dualtune::serve

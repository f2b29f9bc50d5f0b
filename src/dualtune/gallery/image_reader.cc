#include "dualtune/gallery/image_reader.h"

#include <nlohmann/json.hpp>

#include "dualtune/data/image_decode.h"
#include "dualtune/util/error.h"

namespace dualtune::gallery {

data::Image ImageReader::read(const ImageRef& ref) {
  DT_CHECK(!ref.source.empty(), "item '", ref.key,
           "': no image source recorded for this item (imported without --format/--root)");
  const Source& src = source(ref.source);
  if (!src.dataset) return data::decode_image_file(ref.key);
  const auto it = src.index.find(ref.key);
  DT_CHECK(it != src.index.end(), "item '", ref.key, "': missing image: no item with this path in the source dataset ",
           ref.source);
  return src.dataset->image(it->second);
}

const ImageReader::Source& ImageReader::source(const std::string& spec) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = sources_.find(spec);
  if (it != sources_.end()) return *it->second;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(spec);
  } catch (const nlohmann::json::exception& e) {
    DT_THROW("gallery: image source ", spec, " is not valid JSON: ", e.what());
  }
  auto src = std::make_unique<Source>();
  const std::string format = j.value("format", std::string());
  if (format != "files") {
    data::DatasetSpec ds;  // all classes, no limit: every key of the source maps to its image
    ds.format = format;
    ds.root = j.value("root", std::string());
    ds.split = j.value("split", std::string());
    src->dataset = data::open_dataset(ds);
    for (size_t i = 0; i < src->dataset->size(); ++i) src->index.emplace(src->dataset->path(i), i);
  }
  return *(sources_[spec] = std::move(src));
}

}  // namespace dualtune::gallery

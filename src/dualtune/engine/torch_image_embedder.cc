#include "dualtune/engine/torch_image_embedder.h"

#include <torch/torch.h>

#include <algorithm>
#include <future>
#include <map>
#include <mutex>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "dualtune/data/image_decode.h"
#include "dualtune/data/loader.h"
#include "dualtune/engine/extract.h"
#include "dualtune/util/error.h"

namespace dualtune::engine {
namespace {

/// A dataset source of the gallery: the opened dataset and its path -> index map.
struct OpenSource {
  std::shared_ptr<data::Dataset> dataset;
  std::unordered_map<std::string, size_t> index;
};

/// The images of one batch of ImageRefs as a data::Dataset for the loader. image(i)
/// never throws: a failure is recorded in errors[i] and a 1×1 placeholder is returned
/// (its row is dropped by the caller).
class BatchImages : public data::Dataset {
 public:
  struct Item {
    std::shared_ptr<const data::Dataset> dataset;  ///< null: key is a file path
    size_t index = 0;
    std::string key;
    std::string error;  ///< set before loading (unknown key, no source)
  };
  explicit BatchImages(std::vector<Item> items) : items_(std::move(items)), errors_(items_.size()) {
    for (size_t i = 0; i < items_.size(); ++i) errors_[i] = items_[i].error;
  }
  size_t size() const override { return items_.size(); }
  data::Image image(size_t i) const override {
    const Item& it = items_[i];
    if (errors_[i].empty()) {
      try {
        return it.dataset ? it.dataset->image(it.index) : data::decode_image_file(it.key);
      } catch (const std::exception& e) {
        errors_[i] = std::string("image cannot be read: ") + e.what();
      }
    }
    data::Image blank;
    blank.h = blank.w = blank.c = 1;
    blank.pixels = {0};
    return blank;
  }
  int64_t label(size_t) const override { return 0; }
  std::string path(size_t i) const override { return items_[i].key; }
  const data::ClassMap& classes() const override { return classes_; }
  /// Written by loader threads, one index each; read after the batch is loaded.
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  std::vector<Item> items_;
  mutable std::vector<std::string> errors_;
  data::ClassMap classes_;
};

class ModelEmbedder : public gallery::ImageEmbedder {
 public:
  explicit ModelEmbedder(const GalleryEmbedderOptions& o)
      : options_(o), embed_(embedder_for(o.model_path, o.class_map, o.precision, o.device)), fingerprint_(gallery::model_fingerprint(o.model_path)) {
    torch::NoGradGuard no_grad;
    const auto& t = options_.transform;
    const auto e = embed_(torch::zeros({1, t.channels, t.height, t.width}));
    DT_CHECK(e.dim() == 2 && e.size(0) == 1, "model ", o.model_path, " returned shape ", e.sizes(),
             " for one image; expected 1 × D");
    dim_ = e.size(1);
  }
  int64_t dim() const override { return dim_; }
  std::string fingerprint() const override { return fingerprint_; }

  void embed(const std::vector<std::vector<gallery::ImageRef>>& batches,
             const std::function<bool(gallery::EmbeddedBatch&)>& on_batch) override {
    if (batches.empty()) return;
    // Decoding of batch b+1 runs (on its loader's threads) while the model runs on b.
    auto load = [this, &batches](size_t b) { return load_batch(batches[b]); };
    std::future<Loaded> next = std::async(std::launch::async, load, 0);
    torch::NoGradGuard no_grad;
    for (size_t b = 0; b < batches.size(); ++b) {
      Loaded cur = next.get();
      if (b + 1 < batches.size()) next = std::async(std::launch::async, load, b + 1);
      gallery::EmbeddedBatch eb;
      eb.index = static_cast<int64_t>(b);
      const size_t n = batches[b].size();
      for (const auto& r : batches[b]) eb.item_ids.push_back(r.item_id);
      eb.errors = cur.images->errors();
      eb.vectors.assign(n * static_cast<size_t>(dim_), 0.f);
      const auto& x = cur.batch;
      const auto e = embed_(torch::from_blob(const_cast<float*>(x.images.data()), {x.n, x.c, x.h, x.w}))
                         .contiguous()
                         .to(torch::kFloat);
      DT_CHECK(e.dim() == 2 && e.size(0) == x.n && e.size(1) == dim_, "model ", options_.model_path, " returned shape ",
               e.sizes(), " for a batch of ", x.n, "; expected ", x.n, " × ", dim_);
      const float* src = e.data_ptr<float>();
      for (int64_t i = 0; i < x.n; ++i)
        std::copy(src + i * dim_, src + (i + 1) * dim_, eb.vectors.begin() + x.indices[i] * dim_);
      if (!on_batch(eb)) {
        if (next.valid()) next.wait();
        return;
      }
    }
  }

 private:
  struct Loaded {
    std::shared_ptr<BatchImages> images;
    data::Batch batch;
  };

  Loaded load_batch(const std::vector<gallery::ImageRef>& refs) {
    std::vector<BatchImages::Item> items;
    for (const auto& r : refs) {
      BatchImages::Item it;
      it.key = r.key;
      if (r.source.empty()) {
        it.error = "no image source recorded for this item (imported without --format/--root)";
      } else {
        OpenSource* src = source(r.source);
        if (src) {
          auto f = src->index.find(r.key);
          if (f == src->index.end()) it.error = "missing image: no item with this path in the source dataset";
          else it.dataset = src->dataset, it.index = f->second;
        }
      }
      items.push_back(std::move(it));
    }
    Loaded out;
    out.images = std::make_shared<BatchImages>(std::move(items));
    // The loader's workers build whole batches: split this batch into one part per
    // worker so they decode it side by side, then concatenate the parts.
    const int64_t n = static_cast<int64_t>(refs.size());
    const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(options_.workers, n));
    data::LoaderOptions lo;
    lo.batch_size = (n + parts - 1) / parts;
    lo.shuffle = false;
    lo.workers = options_.workers;
    data::TransformOptions tf = options_.transform;
    tf.train = false;
    data::Loader loader(out.images, tf, lo);
    loader.start_epoch(0);
    data::Batch part;
    while (loader.next(part)) {
      data::Batch& b = out.batch;
      b.c = part.c, b.h = part.h, b.w = part.w;
      b.n += part.n;
      b.images.insert(b.images.end(), part.images.begin(), part.images.end());
      b.indices.insert(b.indices.end(), part.indices.begin(), part.indices.end());
    }
    DT_CHECK(out.batch.n == n, "gallery: the loader returned ", out.batch.n, " of ", n, " images");
    return out;
  }

  /// The opened dataset of a source spec (null for {"format":"files"}). Opened once.
  OpenSource* source(const std::string& spec) {
    std::lock_guard<std::mutex> lk(sources_mu_);
    auto it = sources_.find(spec);
    if (it != sources_.end()) return it->second.get();
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(spec);
    } catch (const nlohmann::json::exception& e) {
      DT_THROW("gallery: image source ", spec, " is not valid JSON: ", e.what());
    }
    const std::string format = j.value("format", std::string());
    std::unique_ptr<OpenSource> src;
    if (format != "files") {
      data::DatasetSpec ds;  // all classes, no limit: every key of the source maps to its image
      ds.format = format;
      ds.root = j.value("root", std::string());
      ds.split = j.value("split", std::string());
      src = std::make_unique<OpenSource>();
      src->dataset = data::open_dataset(ds);
      for (size_t i = 0; i < src->dataset->size(); ++i) src->index.emplace(src->dataset->path(i), i);
    }
    return (sources_[spec] = std::move(src)).get();
  }

  GalleryEmbedderOptions options_;
  Embedder embed_;
  std::string fingerprint_;
  int64_t dim_ = 0;
  std::mutex sources_mu_;
  std::map<std::string, std::unique_ptr<OpenSource>> sources_;
};

}  // namespace

std::unique_ptr<gallery::ImageEmbedder> make_gallery_embedder(const GalleryEmbedderOptions& options) {
  return std::make_unique<ModelEmbedder>(options);
}

}  // namespace dualtune::engine

#include "dualtune/serve/embedder_pool.h"

#include <algorithm>

#include "dualtune/serve/http_error.h"

namespace dualtune::serve {

Embedders::Embedders(gallery::Gallery& gallery, EmbedderFactory factory)
    : gallery_(gallery), factory_(std::move(factory)) {}

Embedders::Slot& Embedders::slot(const gallery::ModelInfo& m) {
  HTTP_CHECK(!m.path.empty(), 409, "model '", m.name, "' has no model file recorded (its embeddings were imported): it "
             "cannot embed images; expected a model registered with --model-path, or a search with posted embeddings");
  std::lock_guard<std::mutex> lk(mu_);
  auto& s = slots_[m.name];
  if (!s) s = std::make_unique<Slot>();
  return *s;
}

gallery::ImageEmbedder& Embedders::ready(Slot& s, const gallery::ModelInfo& m) {
  if (!s.embedder) {
    HTTP_CHECK(factory_, 409, "this server embeds no images (no model loader); expected a search with posted embeddings");
    try {
      auto e = factory_(m);
      gallery_.check_model(m.name, *e);
      s.embedder = std::move(e);
    } catch (const Error& e) {
      HTTP_THROW(500, "model '", m.name, "' (", m.path, ") cannot be used: ", e.what());
    }
  }
  return *s.embedder;
}

std::vector<float> Embedders::embed(const gallery::ModelInfo& m, const std::vector<gallery::ImageRef>& refs,
                                    std::vector<std::string>& errors) {
  Slot& s = slot(m);
  std::lock_guard<std::mutex> lk(s.mu);
  gallery::ImageEmbedder& e = ready(s, m);
  std::vector<float> out;
  errors.assign(refs.size(), "");
  e.embed({refs}, [&](gallery::EmbeddedBatch& b) {
    out = std::move(b.vectors);
    errors = std::move(b.errors);
    return true;
  });
  HTTP_CHECK(out.size() == refs.size() * static_cast<size_t>(m.dim) && errors.size() == refs.size(), 500,
             "model '", m.name, "' returned ", out.size(), " values for ", refs.size(), " images of dimension ", m.dim);
  return out;
}

void Embedders::with(const std::vector<gallery::ModelInfo>& models,
                     const std::function<void(const std::vector<std::pair<std::string, gallery::ImageEmbedder*>>&)>& fn) {
  std::vector<gallery::ModelInfo> sorted = models;
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  std::vector<std::unique_lock<std::mutex>> locks;
  std::vector<std::pair<std::string, gallery::ImageEmbedder*>> list;
  for (const auto& m : sorted) {
    Slot& s = slot(m);
    locks.emplace_back(s.mu);
    list.emplace_back(m.name, &ready(s, m));
  }
  fn(list);
}

}  // namespace dualtune::serve

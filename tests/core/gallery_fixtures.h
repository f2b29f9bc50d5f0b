#pragma once
// Helpers for the gallery tests: temporary directories and an ImageEmbedder whose
// vectors are a deterministic function of the item key (no model, no image).
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "dualtune/gallery/image_embedder.h"
#include "dualtune/gallery/gallery.h"
#include "dualtune/gallery/store.h"
#include "dualtune/util/error.h"

namespace dualtune::gallery::fixtures {

/// The message of the dualtune::Error that f throws, or "(no error)".
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const dualtune::Error& e) {
    return e.what();
  }
  return "(no error)";
}

inline std::string temp_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("dualtune_gallery_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

/// The vectors of version `name` (a model's own, or a derived one such as "new@h") in
/// the gallery at `where` (a directory or a postgresql:// URL), by item key.
inline std::map<std::string, std::vector<float>> vectors_by_key(const std::string& where, const std::string& name) {
  auto s = Store::open(where, true);
  VersionInfo m;
  for (const auto& v : s->versions())
    if (v.name == name) m = v;
  if (m.id == 0) throw std::runtime_error("no version named " + name + " in " + s->dir());
  std::map<int64_t, std::string> key;
  for (const auto& r : s->items()) key[r.id] = r.record.key;
  std::map<std::string, std::vector<float>> out;
  s->for_each_vector(m.id, 0, [&](int64_t, int64_t id, const float* v) { out[key[id]] = {v, v + m.dim}; });
  return out;
}

/// Unit-normal components of a key's "true" embedding (the same for every model).
inline std::vector<float> key_vector(const std::string& key, int64_t dim, uint64_t salt) {
  std::mt19937_64 rng(std::hash<std::string>{}(key) ^ (salt * 0x9e3779b97f4a7c15ull));
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> v(static_cast<size_t>(dim));
  for (auto& x : v) x = g(rng);
  return v;
}

/// Embeds key k as key_vector(k, dim, salt). Keys containing "missing" or "corrupt" fail
/// like a missing or undecodable image. `delay` slows each batch (concurrency tests).
class KeyEmbedder : public ImageEmbedder {
 public:
  KeyEmbedder(int64_t dim, uint64_t salt, std::string fingerprint = "")
      : dim_(dim), salt_(salt), fp_(std::move(fingerprint)) {}
  int64_t dim() const override { return dim_; }
  std::string fingerprint() const override { return fp_; }
  void embed(const std::vector<std::vector<ImageRef>>& batches,
             const std::function<bool(EmbeddedBatch&)>& on_batch) override {
    for (size_t b = 0; b < batches.size(); ++b) {
      if (delay.count() > 0) std::this_thread::sleep_for(delay);
      EmbeddedBatch eb;
      eb.index = static_cast<int64_t>(b);
      for (const auto& r : batches[b]) {
        eb.item_ids.push_back(r.item_id);
        const auto v = key_vector(r.key, dim_, salt_);
        eb.vectors.insert(eb.vectors.end(), v.begin(), v.end());
        eb.errors.push_back(r.key.find("missing") != std::string::npos   ? "missing image: " + r.key
                            : r.key.find("corrupt") != std::string::npos ? "corrupt image: " + r.key
                                                                         : "");
      }
      ++batches_embedded;
      if (!on_batch(eb)) return;
    }
  }
  std::chrono::milliseconds delay{0};
  int batches_embedded = 0;

 private:
  int64_t dim_;
  uint64_t salt_;
  std::string fp_;
};

inline std::vector<ItemRecord> records(const std::vector<std::string>& keys, const std::vector<std::string>& labels = {}) {
  std::vector<ItemRecord> out;
  for (size_t i = 0; i < keys.size(); ++i) out.push_back({keys[i], labels.empty() ? "" : labels[i], -1, 0});
  return out;
}

/// "img0", "img1", ...: n item keys.
inline std::vector<std::string> keys_of(int n, const std::string& prefix = "img") {
  std::vector<std::string> k;
  for (int i = 0; i < n; ++i) k.push_back(prefix + std::to_string(i));
  return k;
}

/// A gallery whose deployed model "old" (d = 4) has key_vector(key, 4, 1) for every key,
/// with "new" (d = 6, fingerprint fp-new) rolling out and nothing backfilled yet.
inline std::unique_ptr<Gallery> rolling_out_new(const std::string& where, const std::vector<std::string>& keys) {
  auto g = Gallery::create(where, {"old", 4, "", "fp-old"});
  std::vector<float> x;
  for (const auto& k : keys) {
    const auto v = key_vector(k, 4, 1);
    x.insert(x.end(), v.begin(), v.end());
  }
  g->import_vectors("old", records(keys), 4, x.data(), false);
  g->rollout({"new", 6, "", "fp-new"});
  return g;
}

}  // namespace dualtune::gallery::fixtures

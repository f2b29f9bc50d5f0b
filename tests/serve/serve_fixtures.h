#pragma once
// Helpers of the serve tests: a small ImageFolder gallery of generated PNGs, an
// ImageEmbedder that embeds the real image pixels (no model: a 4×4 or 4×4 + 2×4 area
// average, so a test can compute every expected score by hand from the same images),
// and a real server on a free loopback port, talked to over HTTP.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "dualtune/gallery/gallery.h"
#include "dualtune/gallery/image_reader.h"
#include "dualtune/serve/service.h"
#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"
#include "gallery_fixtures.h"
#include "store_test_env.h"

namespace dualtune::serve::testing {

/// 4 classes × 6 images of 16×16 gray: a bright 5×5 square at a class-specific place on a
/// noisy background, written as root/g/class<c>/<i>.png. Returns the paths.
inline std::vector<std::string> write_images(const std::string& root) {
  std::vector<std::string> paths;
  std::mt19937 rng(7);
  for (int c = 0; c < 4; ++c) {
    const std::string dir = root + "/g/class" + std::to_string(c);
    std::filesystem::create_directories(dir);
    for (int i = 0; i < 6; ++i) {
      cv::Mat m(16, 16, CV_8UC1);
      for (int p = 0; p < 256; ++p) m.data[p] = static_cast<uint8_t>(20 + rng() % 40);
      m(cv::Rect(1 + 5 * (c % 2) + i % 3, 1 + 5 * (c / 2) + i % 2, 5, 5)).setTo(230);
      paths.push_back(dir + "/" + std::to_string(i) + ".png");
      cv::imwrite(paths.back(), m);
    }
  }
  return paths;
}

inline std::string folder_source(const std::string& root) {
  return R"({"format":"image_folder","root":")" + root + R"(","split":"g"})";
}

/// The vector of an image: dim 16 = its 4×4 area average; dim 24 = that + its 2×4 area
/// average (the new model's first 16 components are the old model's). Centred on the
/// image mean, so the cosine compares patterns, not brightness.
inline std::vector<float> pixel_vector(const data::Image& img, int64_t dim) {
  cv::Mat m(img.h, img.w, img.c == 1 ? CV_8UC1 : CV_8UC3, const_cast<uint8_t*>(img.pixels.data()));
  cv::Mat gray = m;
  if (img.c == 3) cv::cvtColor(m, gray, cv::COLOR_RGB2GRAY);
  std::vector<float> v;
  for (const cv::Size s : {cv::Size(4, 4), cv::Size(4, 2)}) {
    cv::Mat small;
    cv::resize(gray, small, s, 0, 0, cv::INTER_AREA);
    for (int p = 0; p < s.area(); ++p) v.push_back(small.data[p]);
  }
  v.resize(static_cast<size_t>(dim));
  double mean = 0;
  for (float x : v) mean += x;
  mean /= double(v.size());
  for (auto& x : v) x -= static_cast<float>(mean);
  return v;
}

class PixelEmbedder : public gallery::ImageEmbedder {
 public:
  explicit PixelEmbedder(int64_t dim) : dim_(dim) {}
  int64_t dim() const override { return dim_; }
  std::string fingerprint() const override { return "pixels:" + std::to_string(dim_); }
  void embed(const std::vector<std::vector<gallery::ImageRef>>& batches,
             const std::function<bool(gallery::EmbeddedBatch&)>& on_batch) override {
    for (size_t b = 0; b < batches.size(); ++b) {
      if (delay.count() > 0) std::this_thread::sleep_for(delay);
      gallery::EmbeddedBatch eb;
      eb.index = static_cast<int64_t>(b);
      for (const auto& r : batches[b]) {
        eb.item_ids.push_back(r.item_id);
        std::vector<float> v(static_cast<size_t>(dim_), 0.f);
        std::string error;
        try {
          v = pixel_vector(reader_.read(r), dim_);
        } catch (const dualtune::Error& e) {
          error = e.what();
        }
        eb.vectors.insert(eb.vectors.end(), v.begin(), v.end());
        eb.errors.push_back(error);
      }
      if (!on_batch(eb)) return;
    }
  }
  std::chrono::milliseconds delay{0};

 private:
  int64_t dim_;
  gallery::ImageReader reader_;
};

/// Cosine of the first min(|a|, |b|) components (how the gallery compares versions).
inline double cosine_prefix(const std::vector<float>& a, const std::vector<float>& b) {
  const size_t d = std::min(a.size(), b.size());
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < d; ++i) ab += double(a[i]) * b[i], aa += double(a[i]) * a[i], bb += double(b[i]) * b[i];
  return ab / std::sqrt(aa * bb);
}

using gallery::testenv::gallery_at;
using gallery::testenv::on_postgres;
using gallery::testenv::url_password;

/// A gallery of the generated images: model "old" (dim 16, deployed) embeds all of
/// them; model "new" (dim 24) is rolled out and nothing is backfilled yet. The gallery
/// lives at gallery_at(dir).
inline std::unique_ptr<gallery::Gallery> transition_gallery(const std::string& dir, const std::string& images_root) {
  PixelEmbedder old_model(16), new_model(24);
  auto g = gallery::Gallery::create(gallery_at(dir), {"old", 16, "pixels-old", old_model.fingerprint()});
  const int64_t source = g->add_source(folder_source(images_root));
  data::DatasetSpec spec;
  spec.format = "image_folder";
  spec.root = images_root;
  spec.split = "g";
  const auto ds = data::open_dataset(spec);
  std::vector<gallery::ItemRecord> items;
  for (size_t i = 0; i < ds->size(); ++i) items.push_back({ds->path(i), ds->classes().name(ds->label(i)), -1, source});
  const auto rep = g->add_images(items, {{"old", &old_model}}, 8, false);
  EXPECT_EQ(rep.added, static_cast<int64_t>(ds->size()));
  g->rollout({"new", 24, "pixels-new", new_model.fingerprint()});
  return g;
}

/// Model loader of the tests: "old" -> 16-d, "new" -> 24-d pixel embedders; `delay` slows
/// every batch (to pause or stop a backfill in the middle).
inline EmbedderFactory pixel_factory(std::chrono::milliseconds delay = std::chrono::milliseconds(0)) {
  return [delay](const gallery::ModelInfo& m) -> std::unique_ptr<gallery::ImageEmbedder> {
    auto e = std::make_unique<PixelEmbedder>(m.dim);
    e->delay = delay;
    return e;
  };
}

/// A server (Service, ShardProxy: bind, run, shutdown) on 127.0.0.1:<free port>, run on
/// its own thread until stop().
template <class Server>
class Loopback {
 public:
  template <class... Args>
  explicit Loopback(Args&&... args) : server_(std::forward<Args>(args)...) {
    port = server_.bind("127.0.0.1", 0);
    thread_ = std::thread([this] { server_.run(); });
  }
  ~Loopback() { stop(); }
  void stop() {
    server_.shutdown();
    if (thread_.joinable()) thread_.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(30, 0);
    return c;
  }
  int port = 0;

 private:
  Server server_;
  std::thread thread_;
};

/// A Service over the gallery, its images embedded by `f`.
class TestServer : public Loopback<Service> {
 public:
  TestServer(gallery::Gallery& g, ServiceOptions o, EmbedderFactory f = pixel_factory())
      : Loopback<Service>(g, std::move(f), std::move(o)) {}
};

inline nlohmann::json body_json(const httplib::Result& r) {
  EXPECT_TRUE(r) << "no answer: " << httplib::to_string(r.error());
  if (!r) return nullptr;
  try {
    return nlohmann::json::parse(r->body);
  } catch (const std::exception&) {
    ADD_FAILURE() << "not JSON (status " << r->status << "): " << r->body.substr(0, 200);
    return nullptr;
  }
}

inline httplib::Headers bearer(const std::string& token) { return {{"Authorization", "Bearer " + token}}; }

/// Polls GET /api/backfill until it is no longer running (at most `seconds`).
inline nlohmann::json wait_backfill(httplib::Client& c, double seconds = 30) {
  const auto t0 = std::chrono::steady_clock::now();
  nlohmann::json j;
  do {
    j = body_json(c.Get("/api/backfill"));
    if (!j.is_object() || !j["running"].get<bool>()) return j;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < seconds);
  ADD_FAILURE() << "backfill still running after " << seconds << " s: " << j.dump();
  return j;
}

inline const std::string kToken = "test-token-0123456789abcdef";

}  // namespace dualtune::serve::testing

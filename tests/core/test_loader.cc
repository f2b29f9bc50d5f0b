#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <opencv2/imgcodecs.hpp>

#include "dualtune/data/image_folder.h"
#include "dualtune/data/loader.h"
#include "dualtune/util/error.h"

namespace fs = std::filesystem;
using namespace dualtune::data;

namespace {

// 50 items of 6x6 gray, item i filled with value i (plus a gradient), label i % 5.
struct MemoryDataset : Dataset {
  ClassMap map{std::vector<std::string>{"a", "b", "c", "d", "e"}};
  size_t size() const override { return 50; }
  Image image(size_t i) const override {
    Image img{6, 6, 1, {}};
    for (int p = 0; p < 36; ++p) img.pixels.push_back(uint8_t(i * 4 + p));
    return img;
  }
  int64_t label(size_t i) const override { return int64_t(i % 5); }
  int64_t camera(size_t i) const override { return int64_t(i % 3); }
  std::string path(size_t i) const override { return "mem#" + std::to_string(i); }
  const ClassMap& classes() const override { return map; }
};

TransformOptions train_transform() {
  TransformOptions t;
  t.height = t.width = 6;
  t.mean = {0.5f};
  t.std = {0.25f};
  t.train = true;
  t.flip = true;
  t.pad = 2;
  t.erasing = 0.5f;
  return t;
}

std::vector<Batch> epoch_batches(int workers, const std::string& sampler, int64_t epoch) {
  LoaderOptions o;
  o.batch_size = 8;
  o.workers = workers;
  o.prefetch = 2;
  o.seed = 11;
  o.sampler = sampler;
  o.p = 3;
  o.k = 2;
  Loader loader(std::make_shared<MemoryDataset>(), train_transform(), o);
  loader.start_epoch(epoch);
  std::vector<Batch> out;
  Batch b;
  while (loader.next(b)) out.push_back(b);
  EXPECT_EQ(int64_t(out.size()), loader.batches_per_epoch());
  return out;
}

void expect_same(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].indices, b[i].indices) << "batch " << i;
    EXPECT_EQ(a[i].labels, b[i].labels);
    EXPECT_EQ(a[i].cameras, b[i].cameras);
    EXPECT_EQ(a[i].images, b[i].images) << "batch " << i;
  }
}

}  // namespace

TEST(Loader, SameBatchesForAnyNumberOfWorkers) {
  const auto w0 = epoch_batches(0, "random", 3);
  ASSERT_EQ(w0.size(), 7u);  // ceil(50 / 8)
  EXPECT_EQ(w0.back().n, 2);
  EXPECT_EQ(w0[0].n, 8);
  EXPECT_EQ(w0[0].images.size(), 8u * 36);
  EXPECT_EQ(w0[0].labels[0], w0[0].indices[0] % 5);
  expect_same(w0, epoch_batches(1, "random", 3));
  expect_same(w0, epoch_batches(3, "random", 3));
  const auto other_epoch = epoch_batches(0, "random", 4);
  EXPECT_NE(w0[0].indices, other_epoch[0].indices);
}

TEST(Loader, PkBatchesAreDeterministicToo) {
  const auto w0 = epoch_batches(0, "pk", 1);
  ASSERT_EQ(w0.size(), 8u);  // floor(50 / (3 * 2))
  EXPECT_EQ(w0[0].n, 6);
  expect_same(w0, epoch_batches(3, "pk", 1));
}

TEST(Loader, SkipAndRestartMidEpoch) {
  const auto full = epoch_batches(0, "random", 0);
  LoaderOptions o;
  o.batch_size = 8;
  o.workers = 2;
  o.seed = 11;
  Loader loader(std::make_shared<MemoryDataset>(), train_transform(), o);
  loader.start_epoch(0);
  loader.skip(5);
  Batch b;
  ASSERT_TRUE(loader.next(b));
  EXPECT_EQ(b.indices, full[5].indices);
  EXPECT_EQ(b.images, full[5].images);
  loader.start_epoch(0);  // restart while workers are mid-epoch
  ASSERT_TRUE(loader.next(b));
  EXPECT_EQ(b.images, full[0].images);
  // destructor joins with batches still queued
}

TEST(Loader, TestTimeOrderIsTheDatasetOrder) {
  LoaderOptions o;
  o.batch_size = 16;
  o.shuffle = false;
  o.workers = 2;
  TransformOptions t;
  t.height = t.width = 6;
  Loader loader(std::make_shared<MemoryDataset>(), t, o);
  loader.start_epoch(0);
  Batch b;
  int64_t expected = 0;
  while (loader.next(b))
    for (int64_t i : b.indices) EXPECT_EQ(i, expected++);
  EXPECT_EQ(expected, 50);
}

TEST(Loader, RethrowsBadImageErrorNamingTheFile) {
  const fs::path root = fs::temp_directory_path() / ("dt_loader_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "x");
  const cv::Mat img(5, 5, CV_8UC1, cv::Scalar(7));
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(cv::imwrite((root / "x" / (std::to_string(i) + ".png")).string(), img));
  const std::string bad = (root / "x" / "9.png").string();
  std::ofstream(bad) << "garbage";
  auto ds = std::make_shared<ImageFolderDataset>(root.string());
  for (int workers : {0, 2}) {
    LoaderOptions o;
    o.batch_size = 3;
    o.shuffle = false;
    o.workers = workers;
    TransformOptions t;
    t.height = t.width = 5;
    Loader loader(ds, t, o);
    loader.start_epoch(0);
    Batch b;
    ASSERT_TRUE(loader.next(b));
    ASSERT_TRUE(loader.next(b));
    try {
      loader.next(b);  // items 6 (9.png) is in batch 2
      ADD_FAILURE() << "expected an error with " << workers << " workers";
    } catch (const dualtune::Error& e) {
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
    EXPECT_FALSE(loader.next(b));
  }
  fs::remove_all(root);
}

TEST(Loader, ShardsSplitTheEpoch) {
  std::vector<int64_t> all;
  for (int r = 0; r < 2; ++r) {
    LoaderOptions o;
    o.batch_size = 5;
    o.workers = 1;
    o.rank = r;
    o.world_size = 2;
    TransformOptions t;
    t.height = t.width = 6;
    Loader loader(std::make_shared<MemoryDataset>(), t, o);
    loader.start_epoch(1);
    EXPECT_EQ(loader.batches_per_epoch(), 5);
    Batch b;
    while (loader.next(b)) all.insert(all.end(), b.indices.begin(), b.indices.end());
  }
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), 50u);
  for (int64_t i = 0; i < 50; ++i) EXPECT_EQ(all[size_t(i)], i);
}

#include <gtest/gtest.h>
#include <zlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "dualtune/data/dataset.h"
#include "dualtune/data/idx.h"
#include "dualtune/util/error.h"
#include "dualtune/util/install_paths.h"

namespace fs = std::filesystem;
using namespace dualtune::data;

namespace {

std::string be32(uint32_t v) {
  return std::string{char(v >> 24), char((v >> 16) & 0xff), char((v >> 8) & 0xff), char(v & 0xff)};
}

// 3 images of 2x2: image i has pixels 10i+0..3; labels 7, 2, 7.
std::string images_bytes() {
  std::string s = be32(0x00000803) + be32(3) + be32(2) + be32(2);
  for (int i = 0; i < 3; ++i)
    for (int p = 0; p < 4; ++p) s += char(10 * i + p);
  return s;
}
std::string labels_bytes(uint32_t n = 3) {
  std::string s = be32(0x00000801) + be32(n);
  const char l[] = {7, 2, 7, 1};
  for (uint32_t i = 0; i < n; ++i) s += l[i];
  return s;
}

std::string gzip(const std::string& raw) {
  z_stream zs{};
  deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&zs, raw.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("dt_idx_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string write(const std::string& name, const std::string& bytes) const {
    std::ofstream(path / name, std::ios::binary) << bytes;
    return (path / name).string();
  }
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const dualtune::Error& e) {
    return e.what();
  }
  return "<no error>";
}

void expect_three_images(const Dataset& ds, const std::string& images_file) {
  ASSERT_EQ(ds.size(), 3u);
  // distinct labels {2, 7} -> classes "2", "7" -> dense 0, 1
  EXPECT_EQ(ds.classes().names(), (std::vector<std::string>{"2", "7"}));
  EXPECT_EQ(ds.label(0), 1);
  EXPECT_EQ(ds.label(1), 0);
  EXPECT_EQ(ds.label(2), 1);
  const Image img = ds.image(2);
  EXPECT_EQ(img.h, 2);
  EXPECT_EQ(img.w, 2);
  EXPECT_EQ(img.c, 1);
  EXPECT_EQ(img.pixels, (std::vector<uint8_t>{20, 21, 22, 23}));
  EXPECT_EQ(ds.path(1), images_file + "#1");
  EXPECT_EQ(ds.camera(0), -1);
}

}  // namespace

TEST(Idx, ReadsRawFiles) {
  TempDir t;
  const std::string img = t.write("train-images-idx3-ubyte", images_bytes());
  t.write("train-labels-idx1-ubyte", labels_bytes());
  IdxDataset ds(t.path.string(), "train");
  expect_three_images(ds, img);
}

TEST(Idx, ReadsGzippedFiles) {
  TempDir t;
  const std::string img = t.write("t10k-images-idx3-ubyte.gz", gzip(images_bytes()));
  t.write("t10k-labels-idx1-ubyte.gz", gzip(labels_bytes()));
  auto ds = open_dataset(DatasetSpec{"idx", t.path.string(), "test", "all", 0});
  expect_three_images(*ds, img);
}

TEST(Idx, ParsesFromMemory) {
  const IdxArray a = parse_idx(gzip(images_bytes()), "mem", 3);
  EXPECT_EQ(a.dims, (std::vector<int64_t>{3, 2, 2}));
  EXPECT_EQ(a.data.size(), 12u);
  EXPECT_EQ(a.data[5], 11);
}

TEST(Idx, RejectsBadMagicNamingTheFile) {
  TempDir t;
  std::string bad = images_bytes();
  bad[3] = 0x02;
  const std::string f = t.write("train-images-idx3-ubyte", bad);
  t.write("train-labels-idx1-ubyte", labels_bytes());
  const std::string msg = error_of([&] { IdxDataset(t.path.string(), "train"); });
  EXPECT_NE(msg.find(f), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected 0x00000803"), std::string::npos) << msg;
  EXPECT_NE(msg.find("found 0x00000802"), std::string::npos) << msg;
}

TEST(Idx, RejectsTruncatedData) {
  TempDir t;
  const std::string full = images_bytes();
  const std::string f = t.write("train-images-idx3-ubyte", full.substr(0, full.size() - 1));
  t.write("train-labels-idx1-ubyte", labels_bytes());
  const std::string msg = error_of([&] { IdxDataset(t.path.string(), "train"); });
  EXPECT_NE(msg.find(f), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated data: expected 12 bytes after the header, found 11"), std::string::npos) << msg;
  EXPECT_NE(error_of([] { parse_idx(std::string("\0\0\x08", 3), "tiny"); }).find("truncated"), std::string::npos);
  EXPECT_NE(error_of([] { parse_idx(be32(0x00000803) + be32(3), "hdr", 3); }).find("truncated header"),
            std::string::npos);
}

TEST(Idx, RejectsTruncatedGzip) {
  const std::string gz = gzip(images_bytes());
  const std::string msg = error_of([&] { parse_idx(gz.substr(0, gz.size() / 2), "half.gz", 3); });
  EXPECT_NE(msg.find("half.gz"), std::string::npos) << msg;
  EXPECT_NE(msg.find("gzip"), std::string::npos) << msg;
}

TEST(Idx, RejectsCountMismatch) {
  TempDir t;
  const std::string img = t.write("train-images-idx3-ubyte", images_bytes());
  const std::string lab = t.write("train-labels-idx1-ubyte", labels_bytes(4));
  const std::string msg = error_of([&] { IdxDataset(t.path.string(), "train"); });
  EXPECT_NE(msg.find("count mismatch"), std::string::npos) << msg;
  EXPECT_NE(msg.find(img + " has 3 images but " + lab + " has 4 labels"), std::string::npos) << msg;
}

TEST(Idx, MissingFilesAndBadSplitAreNamed) {
  TempDir t;
  EXPECT_NE(error_of([&] { IdxDataset(t.path.string(), "train"); }).find("train-images-idx3-ubyte"),
            std::string::npos);
  EXPECT_NE(error_of([&] { IdxDataset(t.path.string(), "val"); }).find("found 'val'"), std::string::npos);
}

TEST(Idx, ReadsFashionMnistTestSplit) {
  const std::string root = dualtune::kFashionMnistDir;
  if (!fs::exists(root + "/t10k-images-idx3-ubyte.gz")) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  IdxDataset ds(root, "test");
  EXPECT_EQ(ds.size(), 10000u);
  EXPECT_EQ(ds.classes().size(), 10u);
  EXPECT_EQ(ds.classes().name(9), "9");
  EXPECT_EQ(ds.image(0).h, 28);
  auto sub = open_dataset(DatasetSpec{"idx", root, "test", "0-4", 0});
  EXPECT_EQ(sub->size(), 5000u);  // Fashion-MNIST test: 1000 per class
  EXPECT_EQ(sub->classes().size(), 5u);
}

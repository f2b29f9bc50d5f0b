// IDX reader; format in idx.h.
#include "dualtune/data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"

namespace fs = std::filesystem;

namespace dualtune::data {
namespace {

constexpr uint64_t kMaxBytes = uint64_t(1) << 34;  // 16 GiB: refuse absurd headers / zip bombs

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

uint32_t be32(const unsigned char* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

bool is_gzip(const std::string& b) {
  return b.size() >= 2 && static_cast<unsigned char>(b[0]) == 0x1f && static_cast<unsigned char>(b[1]) == 0x8b;
}

std::string find_file(const std::string& root, const std::string& stem) {
  const fs::path raw = fs::path(root) / stem;
  const fs::path gz = fs::path(root) / (stem + ".gz");
  if (fs::exists(gz)) return gz.string();
  if (fs::exists(raw)) return raw.string();
  DT_THROW("IDX: expected ", gz.string(), " or ", raw.string(), ", found neither");
}

}  // namespace

std::string gunzip(const std::string& bytes, const std::string& source) {
  z_stream zs{};
  DT_CHECK(inflateInit2(&zs, 15 + 32) == Z_OK, "IDX ", source, ": cannot initialise zlib");
  std::string out;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  zs.avail_in = static_cast<uInt>(bytes.size());
  char buf[1 << 16];
  int ret = Z_OK;
  while (true) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    ret = inflate(&zs, Z_NO_FLUSH);
    if (ret != Z_OK && ret != Z_STREAM_END) break;
    out.append(buf, sizeof buf - zs.avail_out);
    if (out.size() > kMaxBytes) {
      inflateEnd(&zs);
      DT_THROW("IDX ", source, ": gzip data inflates to more than ", kMaxBytes, " bytes");
    }
    if (ret == Z_STREAM_END) {
      // Concatenated gzip members are legal; continue with the next one.
      if (zs.avail_in == 0) break;
      if (inflateReset(&zs) != Z_OK) break;
      continue;
    }
    if (zs.avail_in == 0 && zs.avail_out != 0) {
      ret = Z_BUF_ERROR;
      break;
    }
  }
  const std::string msg = zs.msg ? zs.msg : "";
  inflateEnd(&zs);
  if (ret == Z_STREAM_END) return out;
  if (ret == Z_BUF_ERROR) DT_THROW("IDX ", source, ": truncated gzip data (stream ended early)");
  DT_THROW("IDX ", source, ": corrupt gzip data (zlib error ", ret, msg.empty() ? "" : ": " + msg, ")");
}

IdxArray parse_idx(const std::string& bytes_in, const std::string& source, int expected_ndim) {
  const std::string inflated = is_gzip(bytes_in) ? gunzip(bytes_in, source) : std::string();
  const std::string& bytes = is_gzip(bytes_in) ? inflated : bytes_in;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  DT_CHECK(bytes.size() >= 4, "IDX ", source, ": truncated: expected a 4-byte magic number, found ", bytes.size(),
           " bytes");
  const uint32_t magic = be32(p);
  const int ndim = p[3];
  const uint32_t want = expected_ndim > 0 ? 0x00000800u | uint32_t(expected_ndim) : 0;
  if (expected_ndim > 0) {
    DT_CHECK(magic == want, "IDX ", source, ": bad magic: expected ", hex32(want), " (unsigned bytes, ",
             expected_ndim, " dims), found ", hex32(magic));
  } else {
    DT_CHECK(p[0] == 0 && p[1] == 0 && p[2] == 0x08 && ndim >= 1, "IDX ", source,
             ": bad magic: expected 0x000008NN (unsigned bytes, NN dims), found ", hex32(magic));
  }
  const size_t header = 4 + 4 * size_t(ndim);
  DT_CHECK(bytes.size() >= header, "IDX ", source, ": truncated header: expected ", header, " bytes for ", ndim,
           " dims, found ", bytes.size());
  IdxArray a;
  uint64_t total = 1;
  for (int d = 0; d < ndim; ++d) {
    const uint32_t n = be32(p + 4 + 4 * d);
    a.dims.push_back(n);
    // Checked before multiplying: total * n can wrap around uint64 (e.g. 2^17 x 2^17 x 2^30).
    DT_CHECK(n == 0 || total <= kMaxBytes / n, "IDX ", source, ": dims claim more than ", kMaxBytes, " bytes");
    total *= n;
  }
  const uint64_t have = bytes.size() - header;
  DT_CHECK(have >= total, "IDX ", source, ": truncated data: expected ", total, " bytes after the header, found ",
           have);
  DT_CHECK(have == total, "IDX ", source, ": expected ", total, " bytes after the header, found ", have,
           " (trailing data)");
  a.data.assign(p + header, p + header + total);
  return a;
}

IdxArray read_idx_file(const std::string& path, int expected_ndim) {
  return parse_idx(read_file(path), path, expected_ndim);
}

IdxDataset::IdxDataset(const std::string& root, const std::string& split) {
  std::string prefix;
  if (split == "train") {
    prefix = "train";
  } else if (split == "test" || split == "t10k") {
    prefix = "t10k";
  } else {
    DT_THROW("IDX dataset ", root, ": expected split train or test, found '", split, "'");
  }
  images_name_ = find_file(root, prefix + "-images-idx3-ubyte");
  labels_name_ = find_file(root, prefix + "-labels-idx1-ubyte");
  init(read_idx_file(images_name_, 3), read_idx_file(labels_name_, 1));
}

IdxDataset::IdxDataset(const IdxArray& images, const IdxArray& labels, const std::string& images_name,
                       const std::string& labels_name)
    : images_name_(images_name), labels_name_(labels_name) {
  DT_CHECK(images.dims.size() == 3, "IDX ", images_name_, ": expected 3 dims (count, rows, cols), found ",
           images.dims.size());
  DT_CHECK(labels.dims.size() == 1, "IDX ", labels_name_, ": expected 1 dim (count), found ", labels.dims.size());
  init(images, labels);
}

void IdxDataset::init(const IdxArray& images, const IdxArray& labels) {
  const int64_t n = images.dims[0];
  DT_CHECK(labels.dims[0] == n, "IDX: count mismatch: ", images_name_, " has ", n, " images but ", labels_name_,
           " has ", labels.dims[0], " labels");
  DT_CHECK(images.dims[1] > 0 && images.dims[2] > 0, "IDX ", images_name_, ": expected images of at least 1x1, found ",
           images.dims[1], "x", images.dims[2]);
  h_ = static_cast<int>(images.dims[1]);
  w_ = static_cast<int>(images.dims[2]);
  pixels_ = images.data;

  bool present[256] = {};
  for (uint8_t l : labels.data) present[l] = true;
  std::vector<std::string> names;
  int64_t dense[256];
  for (int v = 0; v < 256; ++v) {
    if (!present[v]) continue;
    dense[v] = static_cast<int64_t>(names.size());
    names.push_back(std::to_string(v));
  }
  classes_ = ClassMap(std::move(names));
  labels_.resize(labels.data.size());
  for (size_t i = 0; i < labels.data.size(); ++i) labels_[i] = dense[labels.data[i]];
}

Image IdxDataset::image(size_t i) const {
  DT_CHECK(i < labels_.size(), "IDX ", images_name_, ": index ", i, " out of range [0, ", labels_.size(), ")");
  Image img;
  img.h = h_;
  img.w = w_;
  img.c = 1;
  const size_t sz = size_t(h_) * size_t(w_);
  img.pixels.assign(pixels_.begin() + static_cast<std::ptrdiff_t>(i * sz),
                    pixels_.begin() + static_cast<std::ptrdiff_t>((i + 1) * sz));
  return img;
}

}  // namespace dualtune::data

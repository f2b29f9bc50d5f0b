#include "dualtune/gallery/vector_index.h"

#include <cblas.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/index_io.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/HNSW.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "dualtune/eval/similarity.h"
#include "dualtune/gallery/topk.h"
#include "dualtune/util/error.h"

namespace fs = std::filesystem;

namespace dualtune::gallery {
namespace {

constexpr char kMagic[8] = {'D', 'T', 'G', 'A', 'L', 'I', 'D', 'X'};

faiss::IndexIDMap2* idmap(const std::unique_ptr<faiss::Index>& p) { return static_cast<faiss::IndexIDMap2*>(p.get()); }

std::string header_json(const CacheHeader& h) {
  return nlohmann::json{{"uuid", h.uuid},       {"version_id", h.version_id}, {"generation", h.generation},
                        {"dim", h.dim},         {"rows", h.rows},             {"max_seq", h.max_seq},
                        {"kind", h.kind}}
      .dump();
}

/// Writes header + index to path atomically (temp file + fsync + rename).
void write_cache_file(const std::string& path, const CacheHeader& h, const faiss::Index& index) {
  fs::create_directories(fs::path(path).parent_path());
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  DT_CHECK(f, "cannot create the index cache ", tmp, ": ", std::strerror(errno));
  try {
    const std::string js = header_json(h);
    const uint32_t len = static_cast<uint32_t>(js.size());
    bool ok = std::fwrite(kMagic, 1, 8, f) == 8 && std::fwrite(&len, 4, 1, f) == 1 &&
              std::fwrite(js.data(), 1, js.size(), f) == js.size();
    DT_CHECK(ok, "writing the index cache ", path, " failed (disk full?)");
    faiss::write_index(&index, f);
    DT_CHECK(std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0, "writing the index cache ", path, " failed (disk full?)");
    std::fclose(f);
    f = nullptr;
    fs::rename(tmp, path);
  } catch (const faiss::FaissException& e) {
    if (f) std::fclose(f);
    fs::remove(tmp);
    DT_THROW("writing the index cache ", path, " failed: ", e.what());
  } catch (...) {
    if (f) std::fclose(f);
    fs::remove(tmp);
    throw;
  }
}

/// Reads a cache file; throws dualtune::Error saying what is wrong with it.
std::unique_ptr<faiss::Index> read_cache_file(const std::string& path, CacheHeader& h) {
  FILE* f = std::fopen(path.c_str(), "rb");
  DT_CHECK(f, "cannot open ", path, ": ", std::strerror(errno));
  std::unique_ptr<FILE, int (*)(FILE*)> guard(f, std::fclose);
  char magic[8];
  uint32_t len = 0;
  DT_CHECK(std::fread(magic, 1, 8, f) == 8 && std::memcmp(magic, kMagic, 8) == 0,
           "expected a dualtune index cache (magic DTGALIDX), found other bytes");
  DT_CHECK(std::fread(&len, 4, 1, f) == 1 && len < (1u << 20), "header length missing or implausible");
  std::string js(len, '\0');
  DT_CHECK(std::fread(js.data(), 1, len, f) == len, "header truncated");
  try {
    const auto j = nlohmann::json::parse(js);
    h.uuid = j.at("uuid").get<std::string>();
    h.version_id = j.at("version_id").get<int64_t>();
    h.generation = j.at("generation").get<int64_t>();
    h.dim = j.at("dim").get<int64_t>();
    h.rows = j.at("rows").get<int64_t>();
    h.max_seq = j.at("max_seq").get<int64_t>();
    h.kind = j.at("kind").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    DT_THROW("header is not the expected JSON: ", e.what());
  }
  try {
    return std::unique_ptr<faiss::Index>(faiss::read_index(f));
  } catch (const faiss::FaissException& e) {
    DT_THROW("FAISS cannot read the index: ", e.what());
  }
}

std::string describe(const CacheHeader& h) {
  return "gallery " + h.uuid.substr(0, 8) + ", version " + std::to_string(h.version_id) + " generation " +
         std::to_string(h.generation) + ", d " + std::to_string(h.dim) + ", " + std::to_string(h.rows) +
         " rows up to seq " + std::to_string(h.max_seq);
}

}  // namespace

std::string Shard::suffix() const {
  return all() ? "" : "-s" + std::to_string(index) + "of" + std::to_string(count);
}

Shard Shard::parse(const std::string& text) {
  Shard s;
  const size_t slash = text.find('/');
  bool ok = slash != std::string::npos && slash > 0 && slash + 1 < text.size() &&
            text.find_first_not_of("0123456789/") == std::string::npos && text.find('/', slash + 1) == std::string::npos;
  if (ok) {
    try {
      s.index = std::stoll(text.substr(0, slash));
      s.count = std::stoll(text.substr(slash + 1));
    } catch (const std::exception&) {
      ok = false;
    }
  }
  DT_CHECK(ok && s.count >= 1 && s.index >= 0 && s.index < s.count, "shard: expected I/N with 0 <= I < N (e.g. 0/2: "
           "the items whose id mod 2 is 0), found '", text, "'");
  return s;
}

std::string VectorIndex::cache_path(const std::string& gallery_dir, const VersionInfo& version, int64_t dim,
                                    const std::string& kind) {
  return (fs::path(gallery_dir) / "index" / (version.name + ".d" + std::to_string(dim) + "." + kind + ".faiss"))
      .string();
}

VectorIndex::VectorIndex(const std::string& uuid, const VersionInfo& version, int64_t dim, const Shard& shard)
    : shard_(shard) {
  DT_CHECK(dim > 0 && dim <= version.dim, "index of version ", version.name, ": expected 0 < d <= ", version.dim,
           ", found ", dim);
  header_.uuid = uuid;
  header_.version_id = version.id;
  header_.generation = version.generation;
  header_.dim = dim;
  header_.kind = "flat" + shard.suffix();
  auto* map = new faiss::IndexIDMap2(new faiss::IndexFlatIP(dim));
  map->own_fields = true;
  index_.reset(map);
}

VectorIndex::~VectorIndex() = default;

const float* VectorIndex::vectors() const {
  return static_cast<const faiss::IndexFlat*>(idmap(index_)->index)->get_xb();
}
const int64_t* VectorIndex::ids() const { return idmap(index_)->id_map.data(); }

int64_t VectorIndex::position(int64_t item_id) const {
  return item_id >= 0 && item_id < static_cast<int64_t>(position_of_.size()) ? position_of_[item_id] : -1;
}

void VectorIndex::index_positions(int64_t from) {
  const int64_t* id = ids();
  for (int64_t p = from; p < header_.rows; ++p) {
    if (id[p] >= static_cast<int64_t>(position_of_.size())) position_of_.resize(static_cast<size_t>(id[p] * 3 / 2 + 16), -1);
    position_of_[static_cast<size_t>(id[p])] = static_cast<int32_t>(p);
  }
}

void VectorIndex::append(int64_t n, const int64_t* item_ids, const float* x, int64_t vdim, int64_t max_seq) {
  if (n > 0) {
    const auto xn = eval::normalized_prefix(n, vdim, x, header_.dim);
    idmap(index_)->add_with_ids(n, xn.data(), item_ids);
  }
  const int64_t from = header_.rows;
  header_.rows += n;
  header_.max_seq = std::max(header_.max_seq, max_seq);
  index_positions(from);
}

int64_t VectorIndex::top_up(Store& store) {
  const VersionInfo v = store.version(header_.version_id);
  DT_CHECK(v.generation == header_.generation, "index of version ", v.name, " holds generation ", header_.generation,
           ", the store is at generation ", v.generation, " (vectors were deleted): rebuild it");
  const int64_t before = header_.rows;
  // Appended in chunks: the store's rows are read once, normalised in blocks.
  constexpr int64_t kChunk = 8192;
  std::vector<int64_t> ids;
  std::vector<float> x;
  int64_t last = header_.max_seq;
  auto flush = [&] {
    append(static_cast<int64_t>(ids.size()), ids.data(), x.data(), v.dim, last);
    ids.clear();
    x.clear();
  };
  store.for_each_vector(v.id, header_.max_seq, [&](int64_t seq, int64_t item, const float* vec) {
    last = seq;  // the rows cover every seq read, the other shards' items included
    if (!shard_.holds(item)) return;
    ids.push_back(item);
    x.insert(x.end(), vec, vec + v.dim);
    if (static_cast<int64_t>(ids.size()) == kChunk) flush();
  });
  flush();
  return header_.rows - before;
}

void VectorIndex::save(const std::string& path) const { write_cache_file(path, header_, *index_); }

std::unique_ptr<VectorIndex> VectorIndex::open(Store& store, const VersionInfo& version, int64_t dim,
                                               bool write_cache, std::string* notice, const Shard& shard) {
  // No cache directory (a PostgreSQL gallery): built from the store, kept in memory only.
  const std::string dir = store.cache_dir();
  const std::string path = dir.empty() ? "" : cache_path(dir, version, dim, "flat" + shard.suffix());
  if (path.empty()) write_cache = false;
  const std::string uuid = store.uuid();
  auto idx = std::make_unique<VectorIndex>(uuid, version, dim, shard);
  bool loaded = false;
  if (!path.empty() && fs::exists(path)) {
    std::string problem;
    try {
      CacheHeader h;
      auto index = read_cache_file(path, h);
      auto* map = dynamic_cast<faiss::IndexIDMap2*>(index.get());
      auto* flat = map ? dynamic_cast<faiss::IndexFlatIP*>(map->index) : nullptr;
      const int64_t store_max = store.max_seq(version.id);
      CacheHeader want = h;
      want.uuid = uuid;
      want.version_id = version.id;
      want.generation = version.generation;
      want.dim = dim;
      want.kind = "flat" + shard.suffix();
      if (h.uuid != want.uuid || h.version_id != want.version_id || h.generation != want.generation ||
          h.dim != want.dim || h.kind != want.kind) {
        problem = "built for " + describe(h) + ", expected " + describe(want);
      } else if (!flat || map->ntotal != h.rows || flat->d != dim) {
        problem = "its index does not hold the " + std::to_string(h.rows) + " flat rows of d " + std::to_string(dim) +
                  " its header announces";
      } else if (h.max_seq > store_max) {
        problem = "it covers vectors up to seq " + std::to_string(h.max_seq) + " but the store ends at seq " +
                  std::to_string(store_max);
      } else {
        idx->index_ = std::move(index);
        idx->header_ = h;
        idx->index_positions(0);
        // Spot check: the first and last rows must be the store's vectors of those items.
        for (int64_t p : {int64_t(0), h.rows - 1}) {
          if (p < 0 || p >= h.rows) continue;  // an empty cache has no row to check
          std::vector<uint8_t> has;
          const auto v = store.vectors_of(version.id, {idx->ids()[p]}, has);
          const auto vn = eval::normalized_prefix(1, version.dim, v.data(), dim);
          double diff = has[0] ? 0.0 : 1.0;
          for (int64_t c = 0; c < dim && has[0]; ++c) diff = std::max(diff, double(std::fabs(vn[c] - idx->vectors()[p * dim + c])));
          if (diff > 1e-5) {
            problem = "row " + std::to_string(p) + " (item " + std::to_string(idx->ids()[p]) +
                      ") differs from the store's vector";
            break;
          }
        }
        loaded = problem.empty();
      }
    } catch (const Error& e) {
      problem = e.what();
    }
    if (!loaded) {
      if (notice) *notice = "index cache " + path + " is stale or corrupt (" + problem + "): rebuilt from the store";
      idx = std::make_unique<VectorIndex>(uuid, version, dim, shard);
    }
  }
  const int64_t before = idx->size();
  const int64_t added = idx->top_up(store);
  // Written when built from scratch or when the file fell well behind (a process that
  // only searches should not rewrite a large file for a few new rows).
  if (write_cache && (!loaded || added > std::max<int64_t>(1000, before / 20))) {
    try {
      idx->save(path);
    } catch (const Error& e) {
      if (notice) *notice += (notice->empty() ? "" : "; ") + std::string("index cache not written: ") + e.what();
    }
  }
  return idx;
}

void VectorIndex::search(int64_t nq, const float* q, int64_t k, const uint8_t* mask, float* scores,
                         int64_t* out_ids) const {
  exact_topk(nq, q, header_.rows, vectors(), ids(), header_.dim, k, mask, scores, out_ids);
}

// ---------------------------------------------------------------------------------

AnnIndex::~AnnIndex() = default;

std::unique_ptr<AnnIndex> AnnIndex::open(const std::string& gallery_dir, const VectorIndex& flat,
                                         const VersionInfo& version, const AnnOptions& opt, bool write_cache,
                                         std::string* notice) {
  DT_CHECK(opt.type == "ivf" || opt.type == "hnsw", "approximate index: expected type ivf or hnsw, found '",
           opt.type, "'");
  auto ann = std::unique_ptr<AnnIndex>(new AnnIndex());
  const int64_t n = flat.size(), d = flat.dim();
  int64_t nlist = opt.nlist;
  if (opt.type == "ivf" && nlist <= 0) nlist = std::max<int64_t>(1, static_cast<int64_t>(4 * std::sqrt(double(n))));
  // "hnswl2-": graphs built on L2 (see open below); older inner-product caches are not reused.
  const std::string kind = (opt.type == "ivf" ? "ivf" + std::to_string(nlist) : "hnswl2-" + std::to_string(opt.hnsw_m)) +
                           flat.shard().suffix();
  const std::string path = gallery_dir.empty() ? "" : VectorIndex::cache_path(gallery_dir, version, d, kind);
  if (path.empty()) write_cache = false;  // no cache directory: memory only
  if (!path.empty() && fs::exists(path)) {
    std::string problem;
    try {
      CacheHeader h;
      auto index = read_cache_file(path, h);
      CacheHeader want = flat.header();
      if (h.uuid != want.uuid || h.version_id != want.version_id || h.generation != want.generation ||
          h.dim != want.dim || h.kind != kind || h.rows > want.rows || index->ntotal != h.rows) {
        want.kind = kind;
        problem = "built for " + describe(h) + " (" + h.kind + "), expected at most " + describe(want) + " (" + kind + ")";
      } else {
        ann->header_ = h;
        ann->index_ = std::move(index);
      }
    } catch (const Error& e) {
      problem = e.what();
    }
    if (!problem.empty() && notice) *notice = "index cache " + path + " is stale or corrupt (" + problem + "): rebuilt";
  }
  bool built = false;
  if (!ann->index_) {
    built = true;
    ann->header_ = flat.header();
    ann->header_.kind = kind;
    ann->header_.rows = 0;
    if (opt.type == "ivf") {
      DT_CHECK(n >= nlist, "IVF index with ", nlist, " lists needs at least as many vectors, found ", n);
      auto* quantizer = new faiss::IndexFlatIP(d);
      auto* ivf = new faiss::IndexIVFFlat(quantizer, d, static_cast<size_t>(nlist), faiss::METRIC_INNER_PRODUCT);
      ivf->own_fields = true;
      ann->index_.reset(ivf);
      // k-means on an evenly strided sample of at most 64 vectors per list (FAISS's own cap is 256).
      const int64_t ns = std::min(n, nlist * 64), stride = std::max<int64_t>(1, n / ns);
      std::vector<float> sample;
      sample.reserve(static_cast<size_t>(ns * d));
      for (int64_t i = 0; i < ns; ++i) sample.insert(sample.end(), flat.vectors() + i * stride * d, flat.vectors() + (i * stride + 1) * d);
      ivf->cp.seed = 1234;
      ivf->train(ns, sample.data());
    } else {
      // L2 on the normalised rows ranks as inner product does (‖x − q‖² = 2 − 2⟨x, q⟩);
      // FAISS 1.7's HNSW builds poor graphs with METRIC_INNER_PRODUCT (measured recall@10
      // 0.28 at any efSearch on 10k clustered vectors).
      auto* hnsw = new faiss::IndexHNSWFlat(d, static_cast<int>(opt.hnsw_m));
      hnsw->hnsw.efConstruction = 40;
      ann->index_.reset(hnsw);
    }
  }
  const int64_t before = ann->header_.rows;
  ann->top_up(flat);
  if (write_cache && (built || ann->header_.rows - before > std::max<int64_t>(1000, before / 20))) {
    try {
      write_cache_file(path, ann->header_, *ann->index_);
    } catch (const Error& e) {
      if (notice) *notice += (notice->empty() ? "" : "; ") + std::string("index cache not written: ") + e.what();
    }
  }
  return ann;
}

void AnnIndex::top_up(const VectorIndex& flat) {
  const int64_t from = header_.rows, n = flat.size() - from;
  if (n > 0) index_->add(n, flat.vectors() + from * flat.dim());
  header_.rows = flat.size();
  header_.max_seq = flat.header().max_seq;
}

void AnnIndex::search(const VectorIndex& flat, int64_t nq, const float* q, int64_t k, const uint8_t* mask,
                      float* scores, int64_t* ids, const AnnOptions& opt) const {
  const int64_t kk = mask ? k * std::max<int64_t>(1, opt.overfetch) : k;
  std::vector<float> D(static_cast<size_t>(nq * kk));
  std::vector<faiss::Index::idx_t> P(static_cast<size_t>(nq * kk));
  if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(index_.get())) {
    faiss::SearchParametersIVF p;
    p.nprobe = static_cast<size_t>(opt.nprobe);
    ivf->search(nq, q, kk, D.data(), P.data(), &p);
  } else {
    // FAISS 1.7.3 ignores SearchParametersHNSW::efSearch on this path (measured: recall
    // constant over efSearch 16..256); the member is used, so searches are serialised.
    auto* hnsw = static_cast<faiss::IndexHNSW*>(index_.get());
    std::lock_guard<std::mutex> lk(hnsw_mu_);
    hnsw->hnsw.efSearch = static_cast<int>(std::max(opt.ef_search, kk));
    hnsw->search(nq, q, kk, D.data(), P.data());
    for (auto& x : D) x = 1.f - x / 2.f;  // squared L2 of unit vectors -> cosine
  }
  const int64_t* id = flat.ids();
  for (int64_t i = 0; i < nq; ++i) {
    TopK top(k);
    for (int64_t j = 0; j < kk; ++j) {
      const int64_t p = P[i * kk + j];
      if (p < 0 || (mask && !mask[p])) continue;
      top.push(D[i * kk + j], id[p]);
    }
    top.write(scores + i * k, ids + i * k);
  }
}

}  // namespace dualtune::gallery

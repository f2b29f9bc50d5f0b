#pragma once
// Search caches of one embedding version at one dimension d: the version's vectors cut
// to their first d components and L2-normalised, with the store's item ids (never
// positions) as FAISS ids. Derived entirely from the store and rebuilt from it when
// missing or stale, so losing or corrupting a cache file loses nothing.
//
//   VectorIndex  exact: faiss::IndexIDMap2(IndexFlatIP). Masked exact top-k (an item is
//                skipped when mask[position] == 0) runs a blockwise BLAS kernel, because
//                FAISS 1.7's IDSelector path for flat indexes is not BLAS-based (measured
//                22× slower at 100k).
//   AnnIndex     approximate: IVF-Flat (inner product) or HNSW-Flat (L2 on the unit rows,
//                scores converted back to cosines) over the same rows, same positions.
//
// Cache file (DIR/index/<version>.d<d>.<kind>.faiss, written atomically; DIR is the
// store's cache_dir(), and a store without one keeps its caches in memory only):
//   "DTGALIDX" | uint32 LE header length | JSON header | faiss::write_index bytes
// The header names the gallery uuid, version id, generation, dimension, rows and the
// largest store seq the rows cover. A file whose header does not match the store, or
// whose index does not match its header, is stale: it is rebuilt (and reported). A file
// that is only behind (same generation, smaller seq) is topped up from the store.
//
// Shards: an index may hold only the items of one shard (Shard below: item id mod n ==
// i), for a search process that serves one part of a gallery (docs/GALLERY.md, "Sharded
// search"). Its kind carries the shard ("flat-s0of2", "ivf64-s0of2"), so shards and
// unsharded processes sharing a gallery directory never read each other's cache files.
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dualtune/gallery/store.h"

namespace faiss {
struct Index;
}  // namespace faiss

namespace dualtune::gallery {

/// The items a search process holds: those whose id mod count == index. By residue and
/// not by contiguous id ranges because a gallery grows: ids are handed out in order
/// (bigserial / INTEGER PRIMARY KEY), so every shard gets every count-th new item and
/// the shards stay balanced without any boundary to move.
struct Shard {
  int64_t index = 0, count = 1;
  bool all() const { return count == 1; }
  bool holds(int64_t item_id) const { return count == 1 || item_id % count == index; }
  /// "" for the whole gallery, else "-s<index>of<count>" (cache kinds, file names).
  std::string suffix() const;
  /// "i/n" (count 1: "0/1").
  std::string str() const { return std::to_string(index) + "/" + std::to_string(count); }
  /// Parses "i/n" with 0 <= i < n; throws saying what was expected.
  static Shard parse(const std::string& text);
};

/// What a cache covers; its file header.
struct CacheHeader {
  std::string uuid;         ///< gallery uuid
  int64_t version_id = 0;
  int64_t generation = 0;
  int64_t dim = 0;          ///< components kept (prefix of the version's vectors)
  int64_t rows = 0;
  int64_t max_seq = 0;      ///< rows hold every vector of the version with seq <= max_seq
  std::string kind;         ///< "flat" | "ivf<nlist>" | "hnswl2-<M>"
};

class VectorIndex {
 public:
  /// Empty index of a version at dimension dim, for the items of `shard`.
  VectorIndex(const std::string& uuid, const VersionInfo& version, int64_t dim, const Shard& shard = {});
  ~VectorIndex();

  /// Loads the cache file of (version, dim) if it matches the store, tops it up, else
  /// rebuilds from the store (and writes the file when `write_cache`). `notice` gets one
  /// line when a file was found stale or corrupt and was rebuilt.
  static std::unique_ptr<VectorIndex> open(Store& store, const VersionInfo& version, int64_t dim, bool write_cache,
                                           std::string* notice = nullptr, const Shard& shard = {});
  /// Path of the cache file in the gallery directory.
  static std::string cache_path(const std::string& gallery_dir, const VersionInfo& version, int64_t dim,
                                const std::string& kind);

  /// Appends the store's vectors of this version with seq > max_seq() (those of the
  /// shard's items). Returns rows added.
  /// Throws (caller rebuilds) when the version's generation changed.
  int64_t top_up(Store& store);
  /// Appends rows: n vectors of the version's full dimension vdim (cut and normalised here).
  void append(int64_t n, const int64_t* ids, const float* x, int64_t vdim, int64_t max_seq);
  void save(const std::string& path) const;

  const CacheHeader& header() const { return header_; }
  const Shard& shard() const { return shard_; }
  int64_t size() const { return header_.rows; }
  int64_t dim() const { return header_.dim; }
  /// n × dim normalised rows, position order.
  const float* vectors() const;
  /// Item id of each position.
  const int64_t* ids() const;
  /// Position of an item, -1 when absent.
  int64_t position(int64_t item_id) const;

  /// Exact top-k by inner product over the positions p with mask[p] != 0 (mask null: all).
  /// @param q       nq normalised queries of size dim(), nq*dim floats
  /// @param scores  output nq*k, descending; ties ordered by item id ascending
  /// @param ids     output nq*k item ids (-1 when fewer than k candidates)
  void search(int64_t nq, const float* q, int64_t k, const uint8_t* mask, float* scores, int64_t* ids) const;

 private:
  CacheHeader header_;
  Shard shard_;
  std::unique_ptr<faiss::Index> index_;  ///< IndexIDMap2 over IndexFlatIP
  std::vector<int32_t> position_of_;     ///< item id -> position (-1), dense over ids
  void index_positions(int64_t from);
  friend class AnnIndex;
};

/// Approximate index over a VectorIndex's rows (same positions). type, nlist and
/// hnsw_m apply when the index is built (a cached index keeps its own); the others at
/// every search.
struct AnnOptions {
  std::string type = "ivf";  ///< ivf | hnsw
  int64_t nlist = 0;         ///< ivf: lists (0: 4·sqrt(n), at least 1)
  int64_t hnsw_m = 32;       ///< hnsw: links per node
  int64_t nprobe = 16;       ///< ivf: lists visited per query
  int64_t ef_search = 64;    ///< hnsw: candidate list size while searching
  int64_t overfetch = 4;     ///< candidates per query = k × overfetch when a mask filters them
};

class AnnIndex {
 public:
  /// Loads the cache file when it matches `flat` (same rows), tops it up when behind,
  /// else trains + fills from the flat rows and writes the file when write_cache.
  static std::unique_ptr<AnnIndex> open(const std::string& gallery_dir, const VectorIndex& flat,
                                        const VersionInfo& version, const AnnOptions& opt, bool write_cache,
                                        std::string* notice = nullptr);
  ~AnnIndex();
  /// Adds the flat index's rows this index does not hold yet.
  void top_up(const VectorIndex& flat);
  /// Approximate top-k with the same contract as VectorIndex::search (ids from `flat`),
  /// with the search-time parameters of `opt` (nprobe, ef_search, overfetch).
  void search(const VectorIndex& flat, int64_t nq, const float* q, int64_t k, const uint8_t* mask, float* scores,
              int64_t* ids, const AnnOptions& opt) const;
  const CacheHeader& header() const { return header_; }

 private:
  AnnIndex() = default;
  CacheHeader header_;
  std::unique_ptr<faiss::Index> index_;
  mutable std::mutex hnsw_mu_;  ///< HNSW's efSearch is a member of the index
};

}  // namespace dualtune::gallery

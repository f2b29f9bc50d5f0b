// Store: the gallery's contents. Image sources, items and their vectors: inserts (each
// call one transaction, vectors immutable once written) and the reads search, backfill
// and evaluation need. A vector is stored as its dim float32s, little-endian, in a BLOB.
#include "dualtune/gallery/sqlite_store.h"

#include <cstring>

#include "dualtune/gallery/fault.h"
#include "dualtune/gallery/store_internal.h"
#include "dualtune/util/error.h"

namespace dualtune::gallery {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "vectors are stored as little-endian float32");

int64_t SqliteStore::add_source(const std::string& spec_json) {
  db_->prepare("INSERT OR IGNORE INTO sources(spec) VALUES (?)").bind(1, spec_json).run();
  auto s = db_->prepare("SELECT id FROM sources WHERE spec = ?");
  s.bind(1, spec_json);
  s.step();
  return s.column_int(0);
}

std::string SqliteStore::source_spec(int64_t id) {
  auto s = db_->prepare("SELECT spec FROM sources WHERE id = ?");
  s.bind(1, id);
  DT_CHECK(s.step(), "gallery ", dir_, ": no image source with id ", id);
  return s.column_text(0);
}

int64_t SqliteStore::item_count() {
  auto s = db_->prepare("SELECT count(*) FROM items");
  return detail::int_value(s);
}

std::vector<int64_t> SqliteStore::find_keys(const std::vector<std::string>& keys) {
  auto s = db_->prepare("SELECT id FROM items WHERE key = ?");
  std::vector<int64_t> out;
  out.reserve(keys.size());
  sql::Transaction t(*db_, false);  // one read snapshot, and much faster than autocommit per key
  for (const auto& k : keys) {
    s.bind(1, k);
    out.push_back(s.step() ? s.column_int(0) : -1);
    s.reset();
  }
  t.commit();
  return out;
}

namespace {

int64_t insert_vectors(sql::Db& db, const std::vector<int64_t>& ids, const VersionRows& r, const std::string& dir,
                       bool keep_existing) {
  DT_CHECK(r.vectors != nullptr || ids.empty(), "gallery: no vectors given for version ", r.version_id);
  auto ins = db.prepare(std::string("INSERT ") + (keep_existing ? "OR IGNORE " : "") +
                        "INTO embeddings(item_id, version_id, vec) VALUES (?, ?, ?)");
  int64_t stored = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    ins.bind(1, ids[i]).bind(2, r.version_id).bind_blob(3, r.vectors + static_cast<int64_t>(i) * r.dim,
                                                        r.dim * static_cast<int64_t>(sizeof(float)));
    try {
      ins.run();
    } catch (const Error& e) {
      DT_THROW("gallery ", dir, ": cannot store the vector of item ", ids[i], " (version ", r.version_id,
               "): an item has at most one vector per version and vectors are immutable (", e.what(), ")");
    }
    stored += db.changes();
  }
  return stored;
}

void check_rows(sql::Db& db, const VersionRows& r) {
  auto s = db.prepare("SELECT dim FROM versions WHERE id = ?");
  s.bind(1, r.version_id);
  DT_CHECK(s.step(), "gallery: no embedding version with id ", r.version_id);
  DT_CHECK(s.column_int(0) == r.dim, "gallery: version ", r.version_id, " has dimension ", s.column_int(0),
           ", found vectors of dimension ", r.dim);
}

}  // namespace

std::vector<int64_t> SqliteStore::add_items(const std::vector<ItemRecord>& items, const std::vector<VersionRows>& rows) {
  DT_CHECK(!rows.empty() || items.empty(), "gallery: an item needs at least one embedding (none given)");
  sql::Transaction t(*db_);
  for (const auto& r : rows) check_rows(*db_, r);
  auto ins = db_->prepare("INSERT INTO items(key, label, cam, source_id) VALUES (?, ?, ?, ?)");
  std::vector<int64_t> ids;
  ids.reserve(items.size());
  for (const auto& it : items) {
    DT_CHECK(!it.key.empty(), "gallery: expected a non-empty item key");
    ins.bind(1, it.key).bind(2, it.label).bind(3, it.cam);
    if (it.source_id > 0) ins.bind(4, it.source_id); else ins.bind_null(4);
    try {
      ins.run();
    } catch (const Error&) {
      DT_THROW("gallery ", dir_, ": cannot add item '", it.key, "': a key must be new (is it already in the gallery?)");
    }
    ids.push_back(db_->last_insert_rowid());
  }
  for (const auto& r : rows) insert_vectors(*db_, ids, r, dir_, false);
  fault_point("before-commit");
  t.commit();
  fault_point("after-commit");
  return ids;
}

int64_t SqliteStore::add_vectors(const std::vector<int64_t>& item_ids, const VersionRows& rows,
                           const std::vector<std::pair<int64_t, std::string>>& failures, bool keep_existing) {
  sql::Transaction t(*db_);
  check_rows(*db_, rows);
  const int64_t stored = insert_vectors(*db_, item_ids, rows, dir_, keep_existing);
  auto f = db_->prepare("INSERT OR REPLACE INTO failures(version_id, item_id, error) VALUES (?, ?, ?)");
  for (const auto& [id, err] : failures) f.bind(1, rows.version_id).bind(2, id).bind(3, err).run();
  fault_point("before-commit");
  t.commit();
  fault_point("after-commit");
  return stored;
}

int64_t SqliteStore::count_vectors(int64_t version_id) {
  auto s = db_->prepare("SELECT count(*) FROM embeddings WHERE version_id = ?");
  s.bind(1, version_id);
  return detail::int_value(s);
}

std::vector<int64_t> SqliteStore::items_with(int64_t version_id) {
  auto s = db_->prepare("SELECT item_id FROM embeddings WHERE version_id = ? ORDER BY item_id");
  s.bind(1, version_id);
  return detail::int_rows(s);
}

std::vector<int64_t> SqliteStore::items_without(int64_t version_id) {
  auto s = db_->prepare(
      "SELECT id FROM items WHERE id NOT IN (SELECT item_id FROM embeddings WHERE version_id = ?) ORDER BY id");
  s.bind(1, version_id);
  return detail::int_rows(s);
}

int64_t SqliteStore::max_seq(int64_t version_id) {
  auto s = db_->prepare("SELECT coalesce(max(seq), 0) FROM embeddings WHERE version_id = ?");
  s.bind(1, version_id);
  return detail::int_value(s);
}

void SqliteStore::for_each_vector(int64_t version_id, int64_t after_seq,
                            const std::function<void(int64_t, int64_t, const float*)>& fn) {
  const int64_t dim = version(version_id).dim;
  auto s = db_->prepare(
      "SELECT seq, item_id, vec FROM embeddings WHERE version_id = ? AND seq > ? ORDER BY seq");
  s.bind(1, version_id).bind(2, after_seq);
  std::vector<float> buf(static_cast<size_t>(dim));
  while (s.step()) {
    int64_t bytes = 0;
    const void* p = s.column_blob(2, &bytes);
    DT_CHECK(bytes == dim * static_cast<int64_t>(sizeof(float)), "gallery ", dir_, ": the vector of item ",
             s.column_int(1), " (version ", version_id, ") has ", bytes, " bytes, expected ", dim * 4,
             " (corrupt database)");
    std::memcpy(buf.data(), p, static_cast<size_t>(bytes));  // SQLite blobs need not be float-aligned
    fn(s.column_int(0), s.column_int(1), buf.data());
  }
}

std::vector<float> SqliteStore::vectors_of(int64_t version_id, const std::vector<int64_t>& item_ids,
                                     std::vector<uint8_t>& has) {
  const int64_t dim = version(version_id).dim;
  std::vector<float> out(item_ids.size() * static_cast<size_t>(dim), 0.f);
  has.assign(item_ids.size(), 0);
  auto s = db_->prepare("SELECT vec FROM embeddings WHERE item_id = ? AND version_id = ?");
  sql::Transaction t(*db_, false);
  for (size_t i = 0; i < item_ids.size(); ++i) {
    s.bind(1, item_ids[i]).bind(2, version_id);
    if (s.step()) {
      int64_t bytes = 0;
      const void* p = s.column_blob(0, &bytes);
      DT_CHECK(bytes == dim * 4, "gallery ", dir_, ": the vector of item ", item_ids[i], " has ", bytes,
               " bytes, expected ", dim * 4, " (corrupt database)");
      std::memcpy(out.data() + i * static_cast<size_t>(dim), p, static_cast<size_t>(bytes));
      has[i] = 1;
    }
    s.reset();
  }
  t.commit();
  return out;
}

namespace {
ItemRow read_item(sql::Stmt& s) {
  ItemRow r;
  r.id = s.column_int(0);
  r.record.key = s.column_text(1);
  r.record.label = s.column_text(2);
  r.record.cam = s.column_int(3);
  r.record.source_id = s.column_is_null(4) ? 0 : s.column_int(4);
  return r;
}
}  // namespace

std::vector<ItemRow> SqliteStore::items() {
  auto s = db_->prepare("SELECT id, key, label, cam, source_id FROM items ORDER BY id");
  std::vector<ItemRow> out;
  while (s.step()) out.push_back(read_item(s));
  return out;
}

std::vector<ItemRow> SqliteStore::items(const std::vector<int64_t>& ids) {
  auto s = db_->prepare("SELECT id, key, label, cam, source_id FROM items WHERE id = ?");
  std::vector<ItemRow> out;
  out.reserve(ids.size());
  sql::Transaction t(*db_, false);
  for (int64_t id : ids) {
    s.bind(1, id);
    DT_CHECK(s.step(), "gallery ", dir_, ": no item with id ", id);
    out.push_back(read_item(s));
    s.reset();
  }
  t.commit();
  return out;
}

std::vector<ItemRow> SqliteStore::items_page(int64_t offset, int64_t limit) {
  auto s = db_->prepare("SELECT id, key, label, cam, source_id FROM items ORDER BY id LIMIT ? OFFSET ?");
  s.bind(1, limit).bind(2, offset);
  std::vector<ItemRow> out;
  while (s.step()) out.push_back(read_item(s));
  return out;
}

std::vector<std::vector<int64_t>> SqliteStore::item_versions(const std::vector<int64_t>& ids) {
  auto s = db_->prepare("SELECT version_id FROM embeddings WHERE item_id = ? ORDER BY version_id");
  std::vector<std::vector<int64_t>> out(ids.size());
  sql::Transaction t(*db_, false);
  for (size_t i = 0; i < ids.size(); ++i) {
    s.bind(1, ids[i]);
    while (s.step()) out[i].push_back(s.column_int(0));
    s.reset();
  }
  t.commit();
  return out;
}

}  // namespace dualtune::gallery

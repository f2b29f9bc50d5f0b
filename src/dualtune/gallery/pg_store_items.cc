// PgStore: the gallery's contents. Image sources, items and their vectors, with the
// SQLite store's rules and messages: each write one transaction (all or none), keys
// unique, vectors immutable (keep_existing: the first write wins). Vectors travel as
// bytea holding dim float32 little-endian, written with COPY (binary) and read in
// binary result format, in pages of kPage rows so a large version never sits in one
// result.
#include <atomic>
#include <cstring>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "dualtune/gallery/fault.h"
#include "dualtune/gallery/pg_store.h"
#include "dualtune/gallery/store_internal.h"
#include "dualtune/util/error.h"

namespace dualtune::gallery {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "vectors are stored as little-endian float32");

namespace {
/// Rows a read or an array parameter carries at once.
constexpr size_t kPage = 10000;

ItemRow read_item(const pg::Result& r, int i) {
  ItemRow row;
  row.id = r.get_int(i, 0);
  row.record.key = r.get_text(i, 1);
  row.record.label = r.get_text(i, 2);
  row.record.cam = r.get_int(i, 3);
  row.record.source_id = r.is_null(i, 4) ? 0 : r.get_int(i, 4);
  return row;
}

template <class T>
std::vector<T> slice(const std::vector<T>& v, size_t from) {
  return std::vector<T>(v.begin() + static_cast<std::ptrdiff_t>(from),
                        v.begin() + static_cast<std::ptrdiff_t>(std::min(v.size(), from + kPage)));
}
}  // namespace

int64_t PgStore::add_source(const std::string& spec_json) {
  Tx t(*this, true);
  conn_->exec("INSERT INTO sources(spec) VALUES ($1) ON CONFLICT (spec) DO NOTHING", pg::Params().add(spec_json));
  const int64_t id = conn_->exec("SELECT id FROM sources WHERE spec = $1", pg::Params().add(spec_json)).get_int(0, 0);
  t.commit();
  return id;
}

std::string PgStore::source_spec(int64_t id) {
  auto r = conn_->exec("SELECT spec FROM sources WHERE id = $1", pg::Params().add(id));
  DT_CHECK(r.rows() == 1, "gallery ", dir_, ": no image source with id ", id);
  return r.get_text(0, 0);
}

int64_t PgStore::item_count() { return conn_->exec("SELECT count(*) FROM items").get_int(0, 0); }

std::vector<int64_t> PgStore::find_keys(const std::vector<std::string>& keys) {
  std::vector<int64_t> out(keys.size(), -1);
  Tx t(*this, false);
  for (size_t from = 0; from < keys.size(); from += kPage) {
    auto r = conn_->exec(
        "SELECT k.i, items.id FROM unnest($1::text[]) WITH ORDINALITY AS k(key, i) JOIN items ON items.key = k.key",
        pg::Params().add(pg::text_array(slice(keys, from))));
    for (int i = 0; i < r.rows(); ++i) out[from + static_cast<size_t>(r.get_int(i, 0)) - 1] = r.get_int(i, 1);
  }
  t.commit();
  return out;
}

void PgStore::check_rows(const VersionRows& rows) {
  auto r = conn_->exec("SELECT dim FROM versions WHERE id = $1", pg::Params().add(rows.version_id));
  DT_CHECK(r.rows() == 1, "gallery: no embedding version with id ", rows.version_id);
  DT_CHECK(r.get_int(0, 0) == rows.dim, "gallery: version ", rows.version_id, " has dimension ", r.get_int(0, 0),
           ", found vectors of dimension ", rows.dim);
}

void PgStore::copy_vectors(const std::vector<int64_t>& ids, const VersionRows& r, const std::vector<size_t>& which) {
  if (which.empty()) return;
  DT_CHECK(r.vectors != nullptr, "gallery: no vectors given for version ", r.version_id);
  const int64_t bytes = r.dim * static_cast<int64_t>(sizeof(float));
  pg::CopyBinary copy;
  for (size_t i : which) {  // in call order: seq follows it, as SQLite's inserts do
    copy.row(3);
    copy.field(ids[i]);
    copy.field(r.version_id);
    copy.field_bytes(r.vectors + static_cast<int64_t>(i) * r.dim, bytes);
  }
  try {
    conn_->copy_in("COPY embeddings(item_id, version_id, vec) FROM STDIN (FORMAT binary)", copy.finish());
  } catch (const Error& e) {
    DT_THROW("gallery ", dir_, ": cannot store the vectors of version ", r.version_id,
             ": each must be of an existing item, an item has at most one vector per version and vectors are "
             "immutable (", e.what(), ")");
  }
}

std::vector<int64_t> PgStore::add_items(const std::vector<ItemRecord>& items, const std::vector<VersionRows>& rows) {
  DT_CHECK(!rows.empty() || items.empty(), "gallery: an item needs at least one embedding (none given)");
  Tx t(*this, true);
  for (const auto& r : rows) check_rows(r);
  // Writers run one at a time (pg_store.h), so keys checked here stay new until COMMIT.
  std::vector<std::string> keys;
  for (const auto& it : items) {
    DT_CHECK(!it.key.empty(), "gallery: expected a non-empty item key");
    keys.push_back(it.key);
  }
  const auto existing = find_keys(keys);
  std::unordered_set<std::string> seen;
  for (size_t i = 0; i < keys.size(); ++i)
    DT_CHECK(existing[i] < 0 && seen.insert(keys[i]).second, "gallery ", dir_, ": cannot add item '", keys[i],
             "': a key must be new (is it already in the gallery?)");
  // Ids drawn first so that the i-th item gets the i-th id, whatever order rows land in.
  std::vector<int64_t> ids;
  ids.reserve(items.size());
  for (size_t from = 0; from < items.size(); from += kPage) {
    const int64_t n = static_cast<int64_t>(std::min(kPage, items.size() - from));
    auto r = conn_->exec("SELECT nextval(pg_get_serial_sequence('items', 'id')) FROM generate_series(1, $1) ORDER BY 1",
                         pg::Params().add(n));
    for (int i = 0; i < r.rows(); ++i) ids.push_back(r.get_int(i, 0));
  }
  for (size_t from = 0; from < items.size(); from += kPage) {
    std::vector<std::string> labels, srcs;
    std::vector<int64_t> cams;
    const auto part = slice(keys, from);
    for (size_t i = from; i < from + part.size(); ++i) {
      labels.push_back(items[i].label);
      cams.push_back(items[i].cam);
      srcs.push_back(items[i].source_id > 0 ? std::to_string(items[i].source_id) : "NULL");
    }
    std::string src = "{";
    for (size_t i = 0; i < srcs.size(); ++i) src += (i ? "," : "") + srcs[i];
    conn_->exec("INSERT INTO items(id, key, label, cam, source_id) "
                "SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])",
                pg::Params().add(pg::int_array(slice(ids, from))).add(pg::text_array(part))
                    .add(pg::text_array(labels)).add(pg::int_array(cams)).add(src + "}"));
  }
  std::vector<size_t> all(ids.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  for (const auto& r : rows) copy_vectors(ids, r, all);
  fault_point("before-commit");
  t.commit();
  fault_point("after-commit");
  return ids;
}

int64_t PgStore::add_vectors(const std::vector<int64_t>& item_ids, const VersionRows& rows,
                             const std::vector<std::pair<int64_t, std::string>>& failures, bool keep_existing) {
  Tx t(*this, true);
  check_rows(rows);
  DT_CHECK(rows.vectors != nullptr || item_ids.empty(), "gallery: no vectors given for version ", rows.version_id);
  // Which items already have a vector of the version (writers run one at a time, so
  // this stays true until COMMIT).
  std::unordered_set<int64_t> have;
  for (size_t from = 0; from < item_ids.size(); from += kPage) {
    auto r = conn_->exec("SELECT item_id FROM embeddings WHERE version_id = $1 AND item_id = ANY($2::bigint[])",
                         pg::Params().add(rows.version_id).add(pg::int_array(slice(item_ids, from))));
    for (int i = 0; i < r.rows(); ++i) have.insert(r.get_int(i, 0));
  }
  std::vector<size_t> which;
  for (size_t i = 0; i < item_ids.size(); ++i) {
    if (have.insert(item_ids[i]).second) {
      which.push_back(i);
    } else {
      DT_CHECK(keep_existing, "gallery ", dir_, ": cannot store the vector of item ", item_ids[i], " (version ",
               rows.version_id, "): an item has at most one vector per version and vectors are immutable (it has one)");
    }
  }
  copy_vectors(item_ids, rows, which);
  for (const auto& [id, err] : failures)
    conn_->exec("INSERT INTO failures(version_id, item_id, error) VALUES ($1, $2, $3) "
                "ON CONFLICT (version_id, item_id) DO UPDATE SET error = EXCLUDED.error",
                pg::Params().add(rows.version_id).add(id).add(err));
  fault_point("before-commit");
  t.commit();
  fault_point("after-commit");
  return static_cast<int64_t>(which.size());
}

int64_t PgStore::count_vectors(int64_t version_id) {
  return conn_->exec("SELECT count(*) FROM embeddings WHERE version_id = $1", pg::Params().add(version_id)).get_int(0, 0);
}

namespace {
std::vector<int64_t> int_column(const pg::Result& r) {
  std::vector<int64_t> out(static_cast<size_t>(r.rows()));
  for (int i = 0; i < r.rows(); ++i) out[static_cast<size_t>(i)] = r.get_int(i, 0);
  return out;
}
}  // namespace

std::vector<int64_t> PgStore::items_with(int64_t version_id) {
  return int_column(conn_->exec("SELECT item_id FROM embeddings WHERE version_id = $1 ORDER BY item_id",
                                pg::Params().add(version_id), true));
}

std::vector<int64_t> PgStore::items_without(int64_t version_id) {
  return int_column(conn_->exec(
      "SELECT id FROM items i WHERE NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.item_id = i.id AND e.version_id = $1) "
      "ORDER BY id",
      pg::Params().add(version_id), true));
}

int64_t PgStore::max_seq(int64_t version_id) {
  return conn_->exec("SELECT coalesce(max(seq), 0) FROM embeddings WHERE version_id = $1", pg::Params().add(version_id))
      .get_int(0, 0);
}

void PgStore::for_each_vector(int64_t version_id, int64_t after_seq,
                              const std::function<void(int64_t, int64_t, const float*)>& fn) {
  const int64_t dim = version(version_id).dim;
  std::vector<float> buf(static_cast<size_t>(dim));
  // One query in seq order, read through a cursor in pages of kPage rows: writers commit
  // in seq order (pg_store.h), so this sees every vector committed before the call whose
  // seq > after_seq. One cursor, not a query per page: right after a bulk import the
  // table has no statistics yet, and a planner that takes it for small may answer each
  // page with a scan and sort of the whole table (33 s instead of ~2 for 1M vectors).
  Tx t(*this, false);
  static std::atomic<int64_t> cursors{0};
  const std::string cursor = "dualtune_vectors_" + std::to_string(++cursors);
  conn_->exec("DECLARE " + cursor + " NO SCROLL CURSOR FOR SELECT seq, item_id, vec FROM embeddings "
              "WHERE version_id = $1 AND seq > $2 ORDER BY seq",
              pg::Params().add(version_id).add(after_seq));
  const std::string fetch = "FETCH FORWARD " + std::to_string(kPage) + " FROM " + cursor;
  for (;;) {
    auto r = conn_->exec(fetch, pg::Params(), true);
    for (int i = 0; i < r.rows(); ++i) {
      int64_t bytes = 0;
      const char* p = r.get_bytes(i, 2, &bytes);
      DT_CHECK(bytes == dim * static_cast<int64_t>(sizeof(float)), "gallery ", dir_, ": the vector of item ",
               r.get_int(i, 1), " (version ", version_id, ") has ", bytes, " bytes, expected ", dim * 4,
               " (corrupt database)");
      std::memcpy(buf.data(), p, static_cast<size_t>(bytes));
      fn(r.get_int(i, 0), r.get_int(i, 1), buf.data());
    }
    if (r.rows() < static_cast<int>(kPage)) break;
  }
  conn_->exec("CLOSE " + cursor);
  t.commit();
}

std::vector<float> PgStore::vectors_of(int64_t version_id, const std::vector<int64_t>& item_ids,
                                       std::vector<uint8_t>& has) {
  const int64_t dim = version(version_id).dim;
  std::vector<float> out(item_ids.size() * static_cast<size_t>(dim), 0.f);
  has.assign(item_ids.size(), 0);
  std::unordered_map<int64_t, std::vector<size_t>> where;  // an id may be asked for twice
  for (size_t i = 0; i < item_ids.size(); ++i) where[item_ids[i]].push_back(i);
  Tx t(*this, false);
  for (size_t from = 0; from < item_ids.size(); from += kPage) {
    auto r = conn_->exec("SELECT item_id, vec FROM embeddings WHERE version_id = $1 AND item_id = ANY($2::bigint[])",
                         pg::Params().add(version_id).add(pg::int_array(slice(item_ids, from))), true);
    for (int i = 0; i < r.rows(); ++i) {
      const int64_t id = r.get_int(i, 0);
      int64_t bytes = 0;
      const char* p = r.get_bytes(i, 1, &bytes);
      DT_CHECK(bytes == dim * 4, "gallery ", dir_, ": the vector of item ", id, " has ", bytes, " bytes, expected ",
               dim * 4, " (corrupt database)");
      for (size_t at : where[id]) {
        std::memcpy(out.data() + at * static_cast<size_t>(dim), p, static_cast<size_t>(bytes));
        has[at] = 1;
      }
    }
  }
  t.commit();
  return out;
}

std::vector<ItemRow> PgStore::items() {
  std::vector<ItemRow> out;
  for (int64_t last = 0;;) {  // pages by id
    auto r = conn_->exec("SELECT id, key, label, cam, source_id FROM items WHERE id > $1 ORDER BY id LIMIT $2",
                         pg::Params().add(last).add(static_cast<int64_t>(kPage)));
    for (int i = 0; i < r.rows(); ++i) out.push_back(read_item(r, i));
    if (r.rows() < static_cast<int>(kPage)) break;
    last = out.back().id;
  }
  return out;
}

std::vector<ItemRow> PgStore::items(const std::vector<int64_t>& ids) {
  std::unordered_map<int64_t, ItemRow> found;
  Tx t(*this, false);
  for (size_t from = 0; from < ids.size(); from += kPage) {
    auto r = conn_->exec("SELECT id, key, label, cam, source_id FROM items WHERE id = ANY($1::bigint[])",
                         pg::Params().add(pg::int_array(slice(ids, from))));
    for (int i = 0; i < r.rows(); ++i) {
      ItemRow row = read_item(r, i);
      found.emplace(row.id, std::move(row));
    }
  }
  t.commit();
  std::vector<ItemRow> out;
  out.reserve(ids.size());
  for (int64_t id : ids) {
    auto it = found.find(id);
    DT_CHECK(it != found.end(), "gallery ", dir_, ": no item with id ", id);
    out.push_back(it->second);
  }
  return out;
}

std::vector<ItemRow> PgStore::items_page(int64_t offset, int64_t limit) {
  auto r = conn_->exec("SELECT id, key, label, cam, source_id FROM items ORDER BY id LIMIT $1 OFFSET $2",
                       pg::Params().add(limit).add(offset));
  std::vector<ItemRow> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(read_item(r, i));
  return out;
}

std::vector<std::vector<int64_t>> PgStore::item_versions(const std::vector<int64_t>& ids) {
  std::unordered_map<int64_t, std::vector<int64_t>> found;
  Tx t(*this, false);
  for (size_t from = 0; from < ids.size(); from += kPage) {
    auto r = conn_->exec(
        "SELECT item_id, version_id FROM embeddings WHERE item_id = ANY($1::bigint[]) ORDER BY item_id, version_id",
        pg::Params().add(pg::int_array(slice(ids, from))));
    for (int i = 0; i < r.rows(); ++i) found[r.get_int(i, 0)].push_back(r.get_int(i, 1));
  }
  t.commit();
  std::vector<std::vector<int64_t>> out;
  for (int64_t id : ids) out.push_back(found.count(id) ? found[id] : std::vector<int64_t>{});
  return out;
}

}  // namespace dualtune::gallery

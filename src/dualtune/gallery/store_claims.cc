// SqliteStore: batch claims, the many-writers backfill protocol of store.h on one
// machine. The claims table is added to a gallery made before it at its first writable
// open (upgrade_claims_schema). Leases are unix seconds by SQLite's clock,
//   now = (julianday('now') - 2440587.5) · 86400   (2440587.5 = julian day of 1970-01-01)
// which every process on the machine shares. A claim is one BEGIN IMMEDIATE transaction,
// so two claims never pick the same batch. Worker locks are flocks: DIR/backfill.lock
// shared (a single-writer backfill takes it exclusively) and DIR/backfill.rank<R>.lock
// exclusive; the kernel releases both when the process dies.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <functional>

#include "dualtune/gallery/sqlite_store.h"
#include "dualtune/gallery/store_internal.h"
#include "dualtune/util/error.h"

namespace dualtune::gallery {
namespace {

constexpr const char* kNow = "((julianday('now') - 2440587.5) * 86400.0)";

constexpr const char* kClaimsTable = R"sql(
CREATE TABLE IF NOT EXISTS claims (
  version_id INTEGER NOT NULL,
  batch INTEGER NOT NULL,
  done INTEGER NOT NULL DEFAULT 0,
  claimed_by TEXT,
  lease_expires REAL,
  PRIMARY KEY (version_id, batch)) WITHOUT ROWID;
)sql";

/// Rows the connection's last INSERT/UPDATE/DELETE changed.
int64_t changes(sql::Db& db) {
  auto s = db.prepare("SELECT changes()");
  return detail::int_value(s);
}

bool has_claims_table(sql::Db& db) {
  auto s = db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'claims'");
  return detail::int_value(s) > 0;
}

/// One flock on a file of the gallery directory; the file holds the holder's pid.
class Flock final : public Store::Lock {
 public:
  Flock(const std::string& path, bool exclusive, bool write_pid, const std::function<std::string(const std::string&)>& why)
      : fd_(::open(path.c_str(), O_RDWR | O_CREAT, 0644)) {
    DT_CHECK(fd_ >= 0, "gallery backfill: cannot open the lock file ", path);
    if (::flock(fd_, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
      char buf[32] = {0};
      const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
      ::close(fd_);
      DT_THROW(why(n > 0 ? buf : "?"));
    }
    const std::string pid = std::to_string(::getpid());
    if (write_pid && ::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, pid.data(), pid.size(), 0);
  }
  ~Flock() override {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }

 private:
  int fd_;
};

class Locks final : public Store::Lock {
 public:
  std::unique_ptr<Store::Lock> shared, rank;
};

}  // namespace

namespace detail {

void upgrade_claims_schema(sql::Db& db) {
  if (has_claims_table(db)) return;
  db.exec(kClaimsTable);
}

void write_claims(sql::Db& db, int64_t version_id, int64_t planned, int64_t batch_size) {
  db.prepare("DELETE FROM claims WHERE version_id = ?").bind(1, version_id).run();
  auto ins = db.prepare("INSERT INTO claims(version_id, batch) VALUES (?, ?)");
  for (int64_t b = 0; b * batch_size < planned; ++b) ins.bind(1, version_id).bind(2, b).run();
}

}  // namespace detail

std::unique_ptr<Store::Lock> SqliteStore::worker_lock(int rank) {
  namespace fs = std::filesystem;
  auto out = std::make_unique<Locks>();
  out->shared = std::make_unique<Flock>((fs::path(dir_) / "backfill.lock").string(), false, false, [&](const std::string& pid) {
    return "gallery " + dir_ + ": a single-writer backfill is running on this gallery (process " + pid +
           "); expected none while workers claim batches";
  });
  out->rank = std::make_unique<Flock>((fs::path(dir_) / ("backfill.rank" + std::to_string(rank) + ".lock")).string(), true,
                                      true, [&](const std::string& pid) {
    return "gallery " + dir_ + ": backfill rank " + std::to_string(rank) + " is already running on this gallery (process " +
           pid + "); expected each rank once (check RANK / WORLD_SIZE of the workers)";
  });
  return out;
}

void SqliteStore::open_claims(int64_t version_id) {
  sql::Transaction t(*db_);
  auto have = db_->prepare("SELECT count(*) FROM claims WHERE version_id = ?");
  have.bind(1, version_id);
  auto p = db_->prepare("SELECT planned, batch_size FROM plans WHERE version_id = ?");
  p.bind(1, version_id);
  if (detail::int_value(have) == 0 && p.step()) detail::write_claims(*db_, version_id, p.column_int(0), p.column_int(1));
  t.commit();
}

BatchClaim SqliteStore::claim_batch(int64_t version_id, const std::string& worker, double lease_seconds) {
  BatchClaim c;
  sql::Transaction t(*db_);
  auto open = db_->prepare("SELECT count(*), coalesce(sum(done = 0), 0) FROM claims WHERE version_id = ?");
  open.bind(1, version_id);
  open.step();
  c.has_claims = open.column_int(0) > 0;
  c.open = open.column_int(1);
  auto pick = db_->prepare(std::string("SELECT batch FROM claims WHERE version_id = ? AND done = 0 AND "
                                       "(claimed_by IS NULL OR lease_expires < ") + kNow + ") ORDER BY batch LIMIT 1");
  pick.bind(1, version_id);
  if (!pick.step()) {
    t.commit();
    return c;
  }
  c.batch = pick.column_int(0);
  pick.reset();
  db_->prepare(std::string("UPDATE claims SET claimed_by = ?, lease_expires = ") + kNow +
               " + ? WHERE version_id = ? AND batch = ?")
      .bind(1, worker).bind(2, lease_seconds).bind(3, version_id).bind(4, c.batch).run();
  auto items = db_->prepare(
      "SELECT p.item_id FROM plan_items p, plans s WHERE p.version_id = ? AND s.version_id = p.version_id "
      "AND p.position >= ? * s.batch_size AND p.position < (? + 1) * s.batch_size "
      "AND NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.item_id = p.item_id AND e.version_id = p.version_id) "
      "AND NOT EXISTS (SELECT 1 FROM failures f WHERE f.item_id = p.item_id AND f.version_id = p.version_id) "
      "ORDER BY p.position");
  items.bind(1, version_id).bind(2, c.batch).bind(3, c.batch);
  c.items = detail::int_rows(items);
  t.commit();
  return c;
}

bool SqliteStore::renew_claim(int64_t version_id, int64_t batch, const std::string& worker, double lease_seconds) {
  db_->prepare(std::string("UPDATE claims SET lease_expires = ") + kNow +
               " + ? WHERE version_id = ? AND batch = ? AND claimed_by = ? AND done = 0")
      .bind(1, lease_seconds).bind(2, version_id).bind(3, batch).bind(4, worker).run();
  return changes(*db_) == 1;
}

bool SqliteStore::finish_claim(int64_t version_id, int64_t batch, const std::string& worker) {
  auto s = db_->prepare("UPDATE claims SET done = 1 WHERE version_id = ? AND batch = ? AND claimed_by = ? AND done = 0");
  s.bind(1, version_id).bind(2, batch).bind(3, worker).run();
  return changes(*db_) == 1;
}

int64_t SqliteStore::release_claims(int64_t version_id, const std::string& worker) {
  db_->prepare("UPDATE claims SET claimed_by = NULL, lease_expires = NULL WHERE version_id = ? AND claimed_by = ? "
               "AND done = 0")
      .bind(1, version_id).bind(2, worker).run();
  return changes(*db_);
}

std::vector<std::tuple<int64_t, bool, std::string>> SqliteStore::claims(int64_t version_id) {
  std::vector<std::tuple<int64_t, bool, std::string>> out;
  if (!has_claims_table(*db_)) return out;  // an old gallery opened read-only
  auto s = db_->prepare("SELECT batch, done, claimed_by FROM claims WHERE version_id = ? ORDER BY batch");
  s.bind(1, version_id);
  while (s.step()) out.emplace_back(s.column_int(0), s.column_int(1) != 0, s.column_text(2));
  return out;
}

}  // namespace dualtune::gallery

// PgStore: batch claims, the many-writers backfill protocol of store.h across machines.
// The lease clock is the server's now(), never a worker's. A claim is one short
// transaction of its own (no write_seq bump: it writes no gallery data, so it neither
// waits for the writers nor makes readers refresh):
//   UPDATE claims SET claimed_by = W, lease_expires = now() + L
//   WHERE version_id = V AND batch = (SELECT batch FROM claims WHERE version_id = V AND NOT done
//         AND (claimed_by IS NULL OR lease_expires < now()) ORDER BY batch LIMIT 1
//         FOR UPDATE SKIP LOCKED)
//   RETURNING batch
// SKIP LOCKED makes concurrent claims pass over each other's rows instead of queueing, and
// READ COMMITTED re-checks the row's condition after locking it, so two claims never get
// one batch. finish_claim's UPDATE ... WHERE claimed_by = W runs inside the commit's write
// transaction: it locks the row until COMMIT, so a reclaim either happened before (the
// commit finds another holder and rolls back) or waits for it (and finds the batch done).
// Worker locks: advisory locks on a connection of their own, released by the server when
// the process dies or the connection drops: the gallery's backfill key shared (a
// single-writer backfill takes it exclusively) and (kRankLockClass, rank) exclusive.
#include <unistd.h>

#include "dualtune/gallery/pg_store.h"
#include "dualtune/util/error.h"

namespace dualtune::gallery {
namespace {

/// The backfill lock's key (pg_store.cc) and the first key of the per-rank locks ("DTGW").
constexpr int64_t kBackfillLockKey = 0x4454474c;
constexpr int64_t kRankLockClass = 0x44544757;

std::string host_name() {
  char buf[256] = {0};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

class WorkerLock final : public PgSessionLock {
 public:
  WorkerLock(const std::string& url, const std::string& shown, int rank) : PgSessionLock(url) {
    conn_.exec("SET application_name = 'dualtune backfill rank " + std::to_string(rank) + ", " + host_name() +
               " process " + std::to_string(::getpid()) + "'");
    const std::string db = "(SELECT oid FROM pg_database WHERE datname = current_database())";
    if (conn_.exec("SELECT pg_try_advisory_lock_shared($1)", pg::Params().add(kBackfillLockKey)).get_text(0, 0) != "t") {
      auto h = conn_.exec("SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                          "WHERE l.locktype = 'advisory' AND l.granted AND l.mode = 'ExclusiveLock' AND l.objsubid = 1 "
                          "AND l.objid = $1 AND l.database = " + db, pg::Params().add(kBackfillLockKey));
      DT_THROW("gallery ", shown, ": a single-writer backfill is running on this gallery (",
               h.rows() ? h.get_text(0, 0) : "?", "); expected none while workers claim batches");
    }
    auto r = conn_.exec("SELECT pg_try_advisory_lock($1::int, $2::int)", pg::Params().add(kRankLockClass).add(rank));
    if (r.get_text(0, 0) != "t") {
      auto h = conn_.exec("SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                          "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 AND l.classid = $1 "
                          "AND l.objid = $2 AND l.database = " + db, pg::Params().add(kRankLockClass).add(rank));
      DT_THROW("gallery ", shown, ": backfill rank ", rank, " is already running on this gallery (",
               h.rows() ? h.get_text(0, 0) : "?", "); expected each rank once (check RANK / WORLD_SIZE of the workers)");
    }
  }

  /// The locks live in the connection's server session: a connection that was lost (and
  /// maybe silently re-established by the next statement) no longer holds them.
  bool held() override {
    conn_.exec("SELECT 1");
    return conn_.reconnects() == 0;
  }
};

}  // namespace

std::unique_ptr<Store::Lock> PgStore::worker_lock(int rank) { return std::make_unique<WorkerLock>(url_, dir_, rank); }

void PgStore::write_claims(int64_t version_id) {
  const pg::Params p = pg::Params().add(version_id);
  conn_->exec("DELETE FROM claims WHERE version_id = $1", p);
  // Batches 0 .. ceil(planned / batch_size) - 1 (none for an empty plan).
  conn_->exec("INSERT INTO claims(version_id, batch) SELECT $1, g FROM plans, "
              "generate_series(0, (planned + batch_size - 1) / batch_size - 1) g WHERE plans.version_id = $1", p);
}

void PgStore::open_claims(int64_t version_id) {
  Tx t(*this, true);
  if (conn_->exec("SELECT count(*) FROM claims WHERE version_id = $1", pg::Params().add(version_id)).get_int(0, 0) == 0)
    write_claims(version_id);
  t.commit();
}

BatchClaim PgStore::claim_batch(int64_t version_id, const std::string& worker, double lease_seconds) {
  DT_CHECK(depth_ == 0, "gallery ", dir_, ": claim_batch inside a transaction (internal error: a claim commits alone)");
  BatchClaim c;
  const pg::Params v = pg::Params().add(version_id);
  conn_->exec("BEGIN");
  try {
    auto n = conn_->exec("SELECT count(*), count(*) FILTER (WHERE NOT done) FROM claims WHERE version_id = $1", v);
    c.has_claims = n.get_int(0, 0) > 0;
    c.open = n.get_int(0, 1);
    auto r = conn_->exec(
        "UPDATE claims SET claimed_by = $2, lease_expires = now() + make_interval(secs => $3::double precision) "
        "WHERE version_id = $1 AND batch = (SELECT batch FROM claims WHERE version_id = $1 AND NOT done AND "
        "(claimed_by IS NULL OR lease_expires < now()) ORDER BY batch LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING batch",
        pg::Params().add(version_id).add(worker).add(std::to_string(lease_seconds)));
    if (r.rows() == 1) {
      c.batch = r.get_int(0, 0);
      auto items = conn_->exec(
          "SELECT p.item_id FROM plan_items p JOIN plans s ON s.version_id = p.version_id WHERE p.version_id = $1 "
          "AND p.position >= $2 * s.batch_size AND p.position < ($2 + 1) * s.batch_size "
          "AND NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.item_id = p.item_id AND e.version_id = p.version_id) "
          "AND NOT EXISTS (SELECT 1 FROM failures f WHERE f.item_id = p.item_id AND f.version_id = p.version_id) "
          "ORDER BY p.position",
          pg::Params().add(version_id).add(c.batch));
      for (int i = 0; i < items.rows(); ++i) c.items.push_back(items.get_int(i, 0));
    }
    conn_->exec("COMMIT");
  } catch (...) {
    conn_->try_exec("ROLLBACK", {});
    throw;
  }
  return c;
}

bool PgStore::renew_claim(int64_t version_id, int64_t batch, const std::string& worker, double lease_seconds) {
  return conn_->exec("UPDATE claims SET lease_expires = now() + make_interval(secs => $4::double precision) "
                     "WHERE version_id = $1 AND batch = $2 AND claimed_by = $3 AND NOT done",
                     pg::Params().add(version_id).add(batch).add(worker).add(std::to_string(lease_seconds)))
             .affected() == 1;
}

bool PgStore::finish_claim(int64_t version_id, int64_t batch, const std::string& worker) {
  DT_CHECK(depth_ > 0 && depth_write_, "gallery ", dir_, ": finish_claim outside a write transaction (internal error)");
  return conn_->exec("UPDATE claims SET done = true WHERE version_id = $1 AND batch = $2 AND claimed_by = $3 AND NOT done",
                     pg::Params().add(version_id).add(batch).add(worker))
             .affected() == 1;
}

int64_t PgStore::release_claims(int64_t version_id, const std::string& worker) {
  return conn_->exec("UPDATE claims SET claimed_by = NULL, lease_expires = NULL WHERE version_id = $1 AND claimed_by = $2 "
                     "AND NOT done", pg::Params().add(version_id).add(worker))
      .affected();
}

std::vector<std::tuple<int64_t, bool, std::string>> PgStore::claims(int64_t version_id) {
  std::vector<std::tuple<int64_t, bool, std::string>> out;
  if (conn_->exec("SELECT to_regclass('claims') IS NULL").get_text(0, 0) == "t") return out;  // old gallery, read-only
  auto r = conn_->exec("SELECT batch, done, coalesce(claimed_by, '') FROM claims WHERE version_id = $1 ORDER BY batch",
                       pg::Params().add(version_id));
  for (int i = 0; i < r.rows(); ++i) out.emplace_back(r.get_int(i, 0), r.get_text(i, 1) == "t", r.get_text(i, 2));
  return out;
}

}  // namespace dualtune::gallery

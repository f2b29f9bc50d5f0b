#pragma once
// Private to the stores' translation units (store*.cc, pg_store*.cc): helpers for
// reading SQLite rows, the timestamp format every table's `created` column uses, the
// uuid of a new gallery and the SQLite lifecycle schema upgrade.
#include <cstdint>
#include <string>
#include <vector>

#include "dualtune/gallery/sqlite.h"

namespace dualtune::gallery::detail {

/// Now as ISO 8601 UTC, e.g. 2026-01-31T12:00:00Z.
std::string now_utc();
/// A new gallery's uuid: 32 random hex digits.
std::string random_uuid();

/// Gives a gallery database made before them the history table and the rolled_back
/// role (store_history.cc); nothing when it has both. Called by SqliteStore::open on a writable
/// connection before foreign keys are switched on.
void upgrade_lifecycle_schema(sql::Db& db);

/// Gives a gallery database made before it the claims table (store_claims.cc); called by
/// SqliteStore::open on a writable connection.
void upgrade_claims_schema(sql::Db& db);
/// Replaces the claim rows of a version by one unclaimed row per batch of a plan of
/// `planned` items in batches of batch_size (inside the caller's transaction).
void write_claims(sql::Db& db, int64_t version_id, int64_t planned, int64_t batch_size);

/// Column 0 of every row the statement yields (ids), in order.
inline std::vector<int64_t> int_rows(sql::Stmt& s) {
  std::vector<int64_t> out;
  while (s.step()) out.push_back(s.column_int(0));
  return out;
}

/// Column 0 of the statement's one row (count(*), max(...), a PRAGMA's value).
inline int64_t int_value(sql::Stmt& s) {
  s.step();
  return s.column_int(0);
}

}  // namespace dualtune::gallery::detail

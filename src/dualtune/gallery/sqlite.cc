#include "dualtune/gallery/sqlite.h"

#include <sqlite3.h>

#include "dualtune/util/error.h"

namespace dualtune::gallery::sql {

Db::Db(const std::string& path, bool create, bool read_only, int busy_timeout_ms) : path_(path) {
  int flags = SQLITE_OPEN_NOMUTEX;  // one connection is never used by two threads at once (callers lock)
  flags |= read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
  if (create) flags |= SQLITE_OPEN_CREATE;
  const int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    const std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    DT_THROW("cannot open the gallery database ", path, ": ", msg);
  }
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, busy_timeout_ms);
}

Db::~Db() { sqlite3_close_v2(db_); }

void Db::fail(const std::string& what) const {
  DT_THROW(what, ": ", path_, ": ", sqlite3_errmsg(db_));
}

void Db::exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    const std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    DT_THROW("gallery database ", path_, ": '", sql.substr(0, 80), "' failed: ", msg);
  }
}

Stmt Db::prepare(const std::string& sql) { return Stmt(*this, sql); }
int64_t Db::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }
int64_t Db::changes() const { return sqlite3_changes(db_); }

Stmt::Stmt(Db& db, const std::string& sql) : db_(&db), sql_(sql) {
  if (sqlite3_prepare_v2(db.handle(), sql.c_str(), -1, &st_, nullptr) != SQLITE_OK)
    db.fail("preparing '" + sql.substr(0, 80) + "'");
}

Stmt::~Stmt() { sqlite3_finalize(st_); }

Stmt::Stmt(Stmt&& o) noexcept : db_(o.db_), st_(o.st_), sql_(std::move(o.sql_)) { o.st_ = nullptr; }

Stmt& Stmt::bind(int i, int64_t v) {
  if (sqlite3_bind_int64(st_, i, v) != SQLITE_OK) db_->fail("binding '" + sql_.substr(0, 80) + "'");
  return *this;
}
Stmt& Stmt::bind(int i, double v) {
  if (sqlite3_bind_double(st_, i, v) != SQLITE_OK) db_->fail("binding '" + sql_.substr(0, 80) + "'");
  return *this;
}
Stmt& Stmt::bind(int i, const std::string& v) {
  if (sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT) != SQLITE_OK)
    db_->fail("binding '" + sql_.substr(0, 80) + "'");
  return *this;
}
Stmt& Stmt::bind_null(int i) {
  if (sqlite3_bind_null(st_, i) != SQLITE_OK) db_->fail("binding '" + sql_.substr(0, 80) + "'");
  return *this;
}
Stmt& Stmt::bind_blob(int i, const void* data, int64_t n) {
  if (sqlite3_bind_blob64(st_, i, data, static_cast<sqlite3_uint64>(n), SQLITE_TRANSIENT) != SQLITE_OK)
    db_->fail("binding '" + sql_.substr(0, 80) + "'");
  return *this;
}

bool Stmt::step() {
  const int rc = sqlite3_step(st_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  db_->fail("running '" + sql_.substr(0, 80) + "'");
}

void Stmt::run() {
  if (step()) DT_THROW("gallery database: '", sql_.substr(0, 80), "' returned rows where none were expected");
  reset();
}

void Stmt::reset(bool clear) {
  sqlite3_reset(st_);
  if (clear) sqlite3_clear_bindings(st_);
}

int64_t Stmt::column_int(int i) const { return sqlite3_column_int64(st_, i); }
double Stmt::column_double(int i) const { return sqlite3_column_double(st_, i); }
std::string Stmt::column_text(int i) const {
  const auto* p = sqlite3_column_text(st_, i);
  return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(st_, i))) : "";
}
bool Stmt::column_is_null(int i) const { return sqlite3_column_type(st_, i) == SQLITE_NULL; }
const void* Stmt::column_blob(int i, int64_t* bytes) const {
  const void* p = sqlite3_column_blob(st_, i);
  *bytes = sqlite3_column_bytes(st_, i);
  return p;
}

Transaction::Transaction(Db& db, bool immediate) : db_(db) {
  // sqlite3_get_autocommit is 0 while a transaction is open on the connection: join it.
  outer_ = sqlite3_get_autocommit(db_.handle()) != 0;
  if (outer_) db_.exec(immediate ? "BEGIN IMMEDIATE" : "BEGIN");
}

Transaction::~Transaction() {
  if (outer_ && !done_) sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void Transaction::commit() {
  if (!outer_) return;
  db_.exec("COMMIT");
  done_ = true;
}

}  // namespace dualtune::gallery::sql

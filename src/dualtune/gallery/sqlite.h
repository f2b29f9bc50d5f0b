#pragma once
// A thin RAII layer over the SQLite C API (sqlite3.h): a connection, prepared
// statements with typed binds and column reads, and transactions. Every failure is a
// dualtune::Error naming the database file, the statement and SQLite's message.
#include <cstdint>
#include <string>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace dualtune::gallery::sql {

class Stmt;

class Db {
 public:
  /// Opens (create = true: creates) the database file. busy_timeout_ms: how long a
  /// statement waits for another connection's lock before failing (SQLITE_BUSY).
  Db(const std::string& path, bool create, bool read_only, int busy_timeout_ms = 60000);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  /// Runs one or more statements without results.
  void exec(const std::string& sql);
  Stmt prepare(const std::string& sql);
  int64_t last_insert_rowid() const;
  int64_t changes() const;
  const std::string& path() const { return path_; }
  sqlite3* handle() { return db_; }
  /// Throws dualtune::Error "<what>: <path>: <sqlite message>".
  [[noreturn]] void fail(const std::string& what) const;

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
};

/// A prepared statement. bind_* take 1-based indexes, column_* 0-based ones.
class Stmt {
 public:
  Stmt(Db& db, const std::string& sql);
  ~Stmt();
  Stmt(Stmt&& o) noexcept;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, int64_t v);
  Stmt& bind(int i, double v);
  Stmt& bind(int i, const std::string& v);
  Stmt& bind_null(int i);
  /// Binds n bytes (copied by SQLite).
  Stmt& bind_blob(int i, const void* data, int64_t n);
  /// Steps once: true while a row is available, false when done.
  bool step();
  /// Steps until done (statements without rows); throws if a row comes back.
  void run();
  /// Resets for re-execution (keeps the binds unless clear is true).
  void reset(bool clear = true);

  int64_t column_int(int i) const;
  double column_double(int i) const;
  std::string column_text(int i) const;
  bool column_is_null(int i) const;
  /// Pointer to the blob of column i (valid until the next step/reset) and its size in bytes.
  const void* column_blob(int i, int64_t* bytes) const;

 private:
  Db* db_;
  sqlite3_stmt* st_ = nullptr;
  std::string sql_;
};

/// BEGIN IMMEDIATE (takes the write lock at once, so a writer never fails half-way on a
/// lock upgrade) ... COMMIT; rolled back by the destructor unless commit() was called.
/// BEGIN [IMMEDIATE] ... COMMIT, rolled back by the destructor unless committed. Inside a
/// transaction already open on the connection (Store::transaction around several calls)
/// it joins that one: no BEGIN, and commit/rollback are left to the outer one.
class Transaction {
 public:
  explicit Transaction(Db& db, bool immediate = true);
  ~Transaction();
  void commit();

 private:
  Db& db_;
  bool done_ = false, outer_ = true;
};

}  // namespace dualtune::gallery::sql

#pragma once
// A thin RAII layer over libpq (libpq-fe.h), the PostgreSQL counterpart of sqlite.h: a
// connection, parameterised statements and their results. Every failure is a
// dualtune::Error naming the server (URL with its password masked), the statement and
// the server's message; the password never appears in a message.
//
// Parameters travel as text except bytea ones (binary), so a vector is sent as its raw
// float32 bytes. Results come back as text by default; exec(..., binary_result = true)
// asks for binary columns (bytea raw, bigint as 8 bytes big-endian), which is what the
// vector reads use to avoid hex-decoding every blob.
//
// A lost connection (server down or restarted) is a gallery::StoreUnreachable (store.h),
// not a plain Error. The next statement reconnects first (PQreset) and replays the
// session settings (set_session); a statement that found the connection lost while no
// transaction was open (a read, BEGIN, SET, LISTEN) is retried once on the new
// connection, so the first request after a restart succeeds. Inside a transaction
// nothing is retried: the transaction is gone with the connection and its caller fails.
#include <cstdint>
#include <string>
#include <vector>

struct pg_conn;
struct pg_result;

namespace dualtune::gallery::pg {

/// True for postgresql://... and postgres://... (libpq's URI forms).
bool is_url(const std::string& s);
/// The URL with its password (user:PASSWORD@ and ?password=...) replaced by "***".
std::string mask_url(const std::string& url);

/// The URL without its password (user:PASSWORD@ becomes user@, a password=... query
/// parameter is dropped), the password in *password ("" when it had none): what a child
/// process gets on its command line, with the password in its environment (PGPASSWORD).
std::string strip_password(const std::string& url, std::string* password);

/// Statement parameters, 1-based in SQL ($1, $2, ...), added in order.
class Params {
 public:
  Params& add(int64_t v);
  Params& add(const std::string& v);
  Params& add_null();
  /// n bytes sent as-is (binary format), for a bytea parameter.
  Params& add_bytes(const void* data, int64_t n);
  size_t size() const { return values_.size(); }

 private:
  friend class Conn;
  std::vector<std::string> values_;
  std::vector<int> lengths_, formats_;
  std::vector<bool> null_;
};

/// The rows of one statement (owned; freed by the destructor).
class Result {
 public:
  explicit Result(pg_result* r) : r_(r) {}
  ~Result();
  Result(Result&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;

  int rows() const;
  bool is_null(int row, int col) const;
  /// An integer column, text or binary (int2/int4/int8) format.
  int64_t get_int(int row, int col) const;
  std::string get_text(int row, int col) const;
  /// A binary-format column's bytes (valid while the Result lives).
  const char* get_bytes(int row, int col, int64_t* n) const;
  /// Rows an INSERT/UPDATE/DELETE touched.
  int64_t affected() const;

 private:
  pg_result* r_;
};

class Conn {
 public:
  /// Connects to the URL. Throws naming the masked URL and libpq's reason (unreachable
  /// server, wrong credentials, no such database).
  explicit Conn(const std::string& url);
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  /// Runs a statement (several, without params and text results). Throws on failure
  /// naming the statement and the server's message.
  Result exec(const std::string& sql, const Params& params = {}, bool binary_result = false);
  /// Like exec (no rows kept) but returns false on failure, the server's message in
  /// last_error() and its SQLSTATE (e.g. 23505, unique violation) in sqlstate().
  bool try_exec(const std::string& sql, const Params& params);
  /// COPY ... FROM STDIN with `data` as the stream (the whole of it, in pieces).
  void copy_in(const std::string& sql, const std::string& data);
  /// Runs a session setting (SET ..., LISTEN ...) now and again after every reconnect.
  void set_session(const std::string& sql);
  /// Waits at most timeout_ms for NOTIFY messages on the channels this connection
  /// LISTENs to; returns how many arrived (0 on timeout). Throws StoreUnreachable when
  /// the connection is lost (it does not reconnect: see ChangeFeed in store.h).
  int wait_notifications(int timeout_ms);
  const std::string& last_error() const { return last_error_; }
  const std::string& sqlstate() const { return sqlstate_; }
  const std::string& shown_url() const { return shown_; }
  /// Times the connection was re-established after it was lost (session state such as
  /// advisory locks did not survive those).
  int64_t reconnects() const { return reconnects_; }

 private:
  std::string describe_failure(pg_result* r) const;
  /// Reconnects when the connection is bad; false (reason in last_error_) when the
  /// server is still unreachable.
  bool ensure_connected();
  [[noreturn]] void throw_unreachable(const std::string& sql);
  /// Sends one statement; nullptr result means "no answer".
  pg_result* send(const std::string& sql, const Params& p, bool binary_result);
  pg_conn* c_ = nullptr;
  int64_t reconnects_ = 0;
  std::vector<std::string> session_;
  std::string shown_, password_;
  std::string last_error_, sqlstate_;
};

/// "{1,2,3}": a bigint[] literal for `= ANY($n::bigint[])`.
std::string int_array(const std::vector<int64_t>& v);
/// {"a","b\"c"}: a text[] literal (every element quoted, " and \ escaped).
std::string text_array(const std::vector<std::string>& v);

/// Builds COPY's binary stream (PostgreSQL docs, "COPY ... Binary Format"): the header,
/// then per row an int16 field count and per field an int32 length and its bytes (ints
/// big-endian), then the int16 -1 trailer.
class CopyBinary {
 public:
  CopyBinary();
  void row(int16_t fields);
  void field(int64_t v);
  void field_bytes(const void* p, int64_t n);
  /// The stream, trailer appended.
  std::string finish();

 private:
  std::string buf_;
};

}  // namespace dualtune::gallery::pg

#include "dualtune/gallery/pg.h"

#include <endian.h>
#include <libpq-fe.h>

#include <poll.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "dualtune/gallery/store.h"
#include "dualtune/util/error.h"

namespace dualtune::gallery::pg {

bool is_url(const std::string& s) { return s.rfind("postgresql://", 0) == 0 || s.rfind("postgres://", 0) == 0; }

std::string mask_url(const std::string& url) {
  std::string out = url;
  const size_t scheme = out.find("://");
  if (scheme == std::string::npos) return out;
  const size_t start = scheme + 3;
  const size_t end = std::min(out.find('/', start), out.find('?', start));
  const size_t at = out.rfind('@', end == std::string::npos ? out.size() : end);
  if (at != std::string::npos && at >= start) {
    const size_t colon = out.find(':', start);
    if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
  }
  // ?password=... or &password=... up to the next '&'
  for (size_t p = out.find("password=", start); p != std::string::npos; p = out.find("password=", p + 1)) {
    if (p == 0 || (out[p - 1] != '?' && out[p - 1] != '&')) continue;
    const size_t v = p + 9, e = out.find('&', v);
    out.replace(v, (e == std::string::npos ? out.size() : e) - v, "***");
  }
  return out;
}

std::string strip_password(const std::string& url, std::string* password) {
  std::string out = url, pw;
  const size_t scheme = out.find("://");
  if (scheme == std::string::npos) {
    if (password) password->clear();
    return out;
  }
  const size_t start = scheme + 3;
  const size_t end = std::min(out.find('/', start), out.find('?', start));
  const size_t at = out.rfind('@', end == std::string::npos ? out.size() : end);
  if (at != std::string::npos && at >= start) {
    const size_t colon = out.find(':', start);
    if (colon != std::string::npos && colon < at) {
      pw = out.substr(colon + 1, at - colon - 1);
      out.erase(colon, at - colon);
    }
  }
  // ?password=...&rest or &password=...: the parameter and its separator go.
  for (size_t p = out.find("password=", start); p != std::string::npos;) {
    if (p == 0 || (out[p - 1] != '?' && out[p - 1] != '&')) {
      p = out.find("password=", p + 1);
      continue;
    }
    const size_t v = p + 9, e = out.find('&', v);
    if (pw.empty()) pw = out.substr(v, (e == std::string::npos ? out.size() : e) - v);
    if (e != std::string::npos) out.erase(p, e + 1 - p);   // "password=x&" -> ""
    else out.erase(p - 1);                                  // "?password=x" / "&password=x" at the end
    p = out.find("password=", p > 0 ? p - 1 : 0);
  }
  // A URI's password is percent-encoded (libpq decodes it); PGPASSWORD takes it plain.
  std::string plain;
  for (size_t i = 0; i < pw.size(); ++i) {
    if (pw[i] == '%' && i + 2 < pw.size() && std::isxdigit(static_cast<unsigned char>(pw[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(pw[i + 2]))) {
      plain += static_cast<char>(std::stoi(pw.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      plain += pw[i];
    }
  }
  if (password) *password = plain;
  return out;
}

// --- Params ---------------------------------------------------------------------------

Params& Params::add(int64_t v) { return add(std::to_string(v)); }

Params& Params::add(const std::string& v) {
  values_.push_back(v);
  lengths_.push_back(0);
  formats_.push_back(0);
  null_.push_back(false);
  return *this;
}

Params& Params::add_null() {
  values_.emplace_back();
  lengths_.push_back(0);
  formats_.push_back(0);
  null_.push_back(true);
  return *this;
}

Params& Params::add_bytes(const void* data, int64_t n) {
  values_.emplace_back(static_cast<const char*>(data), static_cast<size_t>(n));
  lengths_.push_back(static_cast<int>(n));
  formats_.push_back(1);
  null_.push_back(false);
  return *this;
}

// --- Result ---------------------------------------------------------------------------

Result::~Result() { PQclear(r_); }
int Result::rows() const { return PQntuples(r_); }
bool Result::is_null(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }

int64_t Result::get_int(int row, int col) const {
  if (PQgetisnull(r_, row, col)) return 0;
  const char* p = PQgetvalue(r_, row, col);
  if (PQfformat(r_, col) == 0) return std::strtoll(p, nullptr, 10);
  switch (PQgetlength(r_, row, col)) {  // binary integers are big-endian
    case 8: {
      uint64_t v;
      std::memcpy(&v, p, 8);
      return static_cast<int64_t>(be64toh(v));
    }
    case 4: {
      uint32_t v;
      std::memcpy(&v, p, 4);
      return static_cast<int32_t>(be32toh(v));
    }
    case 2: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return static_cast<int16_t>(be16toh(v));
    }
  }
  DT_THROW("postgresql: expected an integer column of 2, 4 or 8 bytes, found ", PQgetlength(r_, row, col), " bytes");
}

std::string Result::get_text(int row, int col) const {
  return std::string(PQgetvalue(r_, row, col), static_cast<size_t>(PQgetlength(r_, row, col)));
}

const char* Result::get_bytes(int row, int col, int64_t* n) const {
  *n = PQgetlength(r_, row, col);
  return PQgetvalue(r_, row, col);
}

int64_t Result::affected() const {
  const char* s = PQcmdTuples(r_);
  return s && *s ? std::strtoll(s, nullptr, 10) : 0;
}

// --- Conn -----------------------------------------------------------------------------

namespace {
std::string replace_all(std::string s, const std::string& what, const std::string& with) {
  if (what.empty()) return s;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + with.size())) s.replace(p, what.size(), with);
  return s;
}
std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}
}  // namespace

Conn::Conn(const std::string& url) : shown_(mask_url(url)) {
  // The password as libpq understands it, so that no message can echo it.
  char* err = nullptr;
  if (PQconninfoOption* opts = PQconninfoParse(url.c_str(), &err)) {
    for (PQconninfoOption* o = opts; o->keyword; ++o)
      if (std::strcmp(o->keyword, "password") == 0 && o->val) password_ = o->val;
    PQconninfoFree(opts);
  } else {
    const std::string why = err ? trim(err) : "unparsable";
    PQfreemem(err);
    DT_THROW("gallery ", shown_, ": not a valid PostgreSQL URL (", replace_all(why, url, shown_),
             "); expected postgresql://USER@HOST:PORT/DATABASE");
  }
  c_ = PQconnectdb(url.c_str());
  if (PQstatus(c_) != CONNECTION_OK) {
    std::string why = trim(PQerrorMessage(c_));
    PQfinish(c_);
    c_ = nullptr;
    why = replace_all(replace_all(why, url, shown_), password_, "***");
    DT_THROW("gallery ", shown_, ": cannot connect to the PostgreSQL server: ", why,
             " (expected a reachable server, valid credentials and an existing database)");
  }
  PQsetNoticeProcessor(c_, [](void*, const char*) {}, nullptr);  // "already exists, skipping" etc.
}

Conn::~Conn() { PQfinish(c_); }

std::string Conn::describe_failure(pg_result* r) const {
  std::string msg = trim(r ? PQresultErrorMessage(r) : PQerrorMessage(c_));
  if (msg.empty()) msg = trim(PQerrorMessage(c_));
  return replace_all(msg, password_, "***");
}

bool Conn::ensure_connected() {
  if (PQstatus(c_) == CONNECTION_OK) return true;
  PQreset(c_);
  if (PQstatus(c_) != CONNECTION_OK) {
    last_error_ = describe_failure(nullptr);
    sqlstate_ = "08006";  // connection_failure
    return false;
  }
  PQsetNoticeProcessor(c_, [](void*, const char*) {}, nullptr);
  ++reconnects_;
  for (const auto& sql : session_) {
    pg_result* r = PQexec(c_, sql.c_str());
    const bool ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) last_error_ = describe_failure(r);
    PQclear(r);
    if (!ok) return false;
  }
  return true;
}

void Conn::throw_unreachable(const std::string& sql) {
  throw StoreUnreachable(detail::concat("gallery ", shown_, ": the database server is unreachable (",
                                        sql.empty() ? std::string("reconnecting") : "'" + sql.substr(0, 80) + "'",
                                        "): ", last_error_));
}

namespace {
/// Statements that may run twice without harm: those sent outside a transaction that
/// read, open a transaction or set the session (the store's writes all run inside one).
bool retryable(const std::string& sql) {
  size_t i = 0;
  while (i < sql.size() && std::isspace(static_cast<unsigned char>(sql[i]))) ++i;
  for (const char* w : {"SELECT", "BEGIN", "SET", "LISTEN", "SHOW"})
    if (sql.compare(i, std::strlen(w), w) == 0) return true;
  return false;
}
}  // namespace

pg_result* Conn::send(const std::string& sql, const Params& p, bool binary_result) {
  std::vector<const char*> values(p.size());
  for (size_t i = 0; i < p.size(); ++i) values[i] = p.null_[i] ? nullptr : p.values_[i].data();
  for (int attempt = 0;; ++attempt) {
    if (!ensure_connected()) return nullptr;
    const bool idle = PQtransactionStatus(c_) == PQTRANS_IDLE;
    pg_result* r = p.size() == 0 && !binary_result
                       ? PQexec(c_, sql.c_str())  // may hold several statements
                       : PQexecParams(c_, sql.c_str(), static_cast<int>(p.size()), nullptr, values.data(),
                                      p.lengths_.data(), p.formats_.data(), binary_result ? 1 : 0);
    if (PQstatus(c_) == CONNECTION_OK || attempt > 0 || !idle || !retryable(sql)) return r;
    PQclear(r);  // lost while idle (e.g. the server restarted since the last statement): once more
  }
}

bool Conn::try_exec(const std::string& sql, const Params& p) {
  pg_result* r = send(sql, p, false);
  if (!r && PQstatus(c_) != CONNECTION_OK) return false;  // unreachable: last_error_ says why
  const auto st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    PQclear(r);
    return true;
  }
  last_error_ = describe_failure(r);
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  sqlstate_ = state ? state : "";
  PQclear(r);
  return false;
}

Result Conn::exec(const std::string& sql, const Params& p, bool binary_result) {
  pg_result* r = send(sql, p, binary_result);
  const auto st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return Result(r);
  if (r) last_error_ = describe_failure(r);
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  sqlstate_ = state ? state : sqlstate_;
  PQclear(r);
  if (PQstatus(c_) != CONNECTION_OK) throw_unreachable(sql);
  DT_THROW("gallery ", shown_, ": '", sql.substr(0, 80), "' failed: ", last_error_);
}

void Conn::set_session(const std::string& sql) {
  exec(sql);
  session_.push_back(sql);
}

int Conn::wait_notifications(int timeout_ms) {
  if (PQstatus(c_) != CONNECTION_OK) throw_unreachable("");
  auto drain = [this] {
    int n = 0;
    while (PGnotify* m = PQnotifies(c_)) {
      ++n;
      PQfreemem(m);
    }
    return n;
  };
  int n = drain();
  if (n > 0) return n;
  pollfd fd{PQsocket(c_), POLLIN, 0};
  if (fd.fd < 0) {
    last_error_ = "no socket";
    throw_unreachable("");
  }
  const int ready = ::poll(&fd, 1, timeout_ms);
  if (ready > 0) {
    // A closed socket reads as ready; PQconsumeInput then fails and the status goes bad.
    if (!PQconsumeInput(c_) || PQstatus(c_) != CONNECTION_OK) {
      last_error_ = describe_failure(nullptr);
      throw_unreachable("");
    }
    n = drain();
  }
  return n;
}

void Conn::copy_in(const std::string& sql, const std::string& data) {
  if (!ensure_connected()) throw_unreachable(sql);
  pg_result* r = PQexec(c_, sql.c_str());
  if (!r || PQresultStatus(r) != PGRES_COPY_IN) {
    last_error_ = describe_failure(r);
    PQclear(r);
    if (PQstatus(c_) != CONNECTION_OK) throw_unreachable(sql);
    DT_THROW("gallery ", shown_, ": '", sql.substr(0, 80), "' failed: ", last_error_);
  }
  PQclear(r);
  constexpr size_t kPiece = 1 << 20;
  bool ok = true;
  for (size_t at = 0; at < data.size() && ok; at += kPiece)
    ok = PQputCopyData(c_, data.data() + at, static_cast<int>(std::min(kPiece, data.size() - at))) == 1;
  ok = PQputCopyEnd(c_, ok ? nullptr : "client failed sending the rows") == 1 && ok;
  std::string failure;
  while (pg_result* res = PQgetResult(c_)) {  // drain: the COPY's result, then nullptr
    if (PQresultStatus(res) != PGRES_COMMAND_OK && failure.empty()) {
      failure = describe_failure(res);
      const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
      sqlstate_ = state ? state : "";
    }
    PQclear(res);
  }
  if (!ok && failure.empty()) failure = describe_failure(nullptr);
  if (!failure.empty()) {
    last_error_ = failure;
    if (PQstatus(c_) != CONNECTION_OK) throw_unreachable(sql);
    DT_THROW("gallery ", shown_, ": '", sql.substr(0, 80), "' failed: ", failure);
  }
}

std::string text_array(const std::vector<std::string>& v) {
  std::string s = "{";
  for (size_t i = 0; i < v.size(); ++i) {
    s += i ? ",\"" : "\"";
    for (char c : v[i]) {
      if (c == '"' || c == '\\') s += '\\';
      s += c;
    }
    s += '"';
  }
  return s + "}";
}

CopyBinary::CopyBinary() {
  static const char kHeader[] = "PGCOPY\n\377\r\n";  // 11 bytes with its NUL
  buf_.assign(kHeader, 11);
  buf_.append(8, '\0');  // flags, header extension length
}

namespace {
template <class T>
void put_be(std::string& b, T v) {
  char p[sizeof(T)];
  for (size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<char>((static_cast<uint64_t>(v) >> (8 * (sizeof(T) - 1 - i))) & 0xff);
  b.append(p, sizeof(T));
}
}  // namespace

void CopyBinary::row(int16_t fields) { put_be<uint16_t>(buf_, static_cast<uint16_t>(fields)); }
void CopyBinary::field(int64_t v) {
  put_be<uint32_t>(buf_, 8);
  put_be<uint64_t>(buf_, static_cast<uint64_t>(v));
}
void CopyBinary::field_bytes(const void* p, int64_t n) {
  put_be<uint32_t>(buf_, static_cast<uint32_t>(n));
  buf_.append(static_cast<const char*>(p), static_cast<size_t>(n));
}
std::string CopyBinary::finish() {
  put_be<uint16_t>(buf_, 0xffff);
  return std::move(buf_);
}

std::string int_array(const std::vector<int64_t>& v) {
  std::string s = "{";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "}";
}

}  // namespace dualtune::gallery::pg

#pragma once
// Where the store tests keep their galleries: a temporary directory (SQLite) or a fresh
// database on the throwaway PostgreSQL cluster that tests/scripts/pg_cluster.sh starts
// (ctest fixture pg.cluster). The cluster's superuser URL comes from
// DUALTUNE_TEST_PG_URL, or from the file url in DUALTUNE_TEST_PG_DIR. Without either the
// PostgreSQL tests FAIL saying how to get a server: CI installs it, a silent skip would
// hide a missing store.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "dualtune/gallery/pg.h"
#include "gallery_fixtures.h"

namespace dualtune::gallery::testenv {

/// The cluster's superuser URL, or "" after a test failure saying what is missing.
inline std::string admin_url() {
  if (const char* u = std::getenv("DUALTUNE_TEST_PG_URL"); u && *u) return u;
  const char* d = std::getenv("DUALTUNE_TEST_PG_DIR");
  std::string url;
  if (d && *d) std::getline(std::ifstream(std::string(d) + "/url"), url);
  if (url.empty())
    ADD_FAILURE() << "no PostgreSQL test server: expected DUALTUNE_TEST_PG_URL, or DUALTUNE_TEST_PG_DIR with the url "
                     "file tests/scripts/pg_cluster.sh writes (ctest starts it as the fixture pg.cluster). Is the "
                     "server installed? Run scripts/install_deps.sh (Debian postgresql + libpq-dev).";
  return url;
}

/// The URL with its database replaced: scheme://user:pw@host:port/DB (no query kept).
inline std::string with_database(const std::string& url, const std::string& db) {
  const size_t slash = url.find('/', url.find("://") + 3);
  return url.substr(0, slash) + "/" + db;
}

/// A new, empty database for one test, dropped at the end.
class Database {
 public:
  Database() : admin_(admin_url()) {
    if (admin_.empty()) return;
    static std::atomic<int> counter{0};
    name_ = "dt_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
    pg::Conn c(admin_);
    c.exec("DROP DATABASE IF EXISTS " + name_);
    c.exec("CREATE DATABASE " + name_);
    url_ = with_database(admin_, name_);
  }
  ~Database() {
    if (name_.empty()) return;
    try {
      pg::Conn(admin_).exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    } catch (const std::exception&) {  // a leftover database on a throwaway cluster
    }
  }
  const std::string& url() const { return url_; }
  const std::string& name() const { return name_; }

 private:
  std::string admin_, name_, url_;
};

/// The store kinds every contract test runs against.
enum class Kind { kSqlite, kPostgres };
inline std::string kind_name(const testing::TestParamInfo<Kind>& i) {
  return i.param == Kind::kSqlite ? "sqlite" : "postgresql";
}

/// A place for a new gallery of the given kind (directory or URL), cleaned up after.
class Where {
 public:
  Where(Kind k, const std::string& name) {
    if (k == Kind::kSqlite) {
      where_ = fixtures::temp_dir(name);
      std::filesystem::remove_all(where_);  // create() makes it
    } else {
      db_ = std::make_unique<Database>();
      where_ = db_->url();
    }
  }
  const std::string& str() const { return where_; }
  bool ok() const { return !where_.empty(); }

 private:
  std::unique_ptr<Database> db_;
  std::string where_;
};

/// The store a suite of directory galleries runs on: SQLite galleries in directories, or
/// PostgreSQL databases when DUALTUNE_TEST_STORE=postgresql (ctest runs such a suite a
/// second time that way, as pg.*, on the throwaway cluster of the fixture pg.cluster).
inline bool on_postgres() {
  const char* s = std::getenv("DUALTUNE_TEST_STORE");
  return s && std::string(s) == "postgresql";
}

/// The databases gallery_at made, by test and directory. They are dropped when the test
/// program ends, from this gtest listener, not by a static's destructor at exit: OpenSSL,
/// which libpq connects with, registers its own atexit cleanup at the first connection,
/// i.e. after such a static was made, so it runs first and the DROP's connection then
/// crashes in OpenSSL (SIGSEGV after every test had passed).
class GalleryDatabases : public ::testing::EmptyTestEventListener {
 public:
  /// The one instance, appended to gtest's listeners (which own it) at first use.
  static GalleryDatabases& get() {
    static GalleryDatabases* d = [] {
      auto* p = new GalleryDatabases;
      ::testing::UnitTest::GetInstance()->listeners().Append(p);
      return p;
    }();
    return *d;
  }
  std::string url_for(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& db = databases_[key];
    if (!db) db = std::make_unique<Database>();
    return db->url();
  }
  void OnTestProgramEnd(const ::testing::UnitTest&) override {
    std::lock_guard<std::mutex> lock(mu_);
    databases_.clear();
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Database>> databases_;
};

/// Where the gallery a test names by the directory `dir` lives: `dir` itself on SQLite;
/// on PostgreSQL a fresh database of the test cluster, the same one each time the
/// running test asks for the same `dir` (dropped when the test program ends).
inline std::string gallery_at(const std::string& dir) {
  if (!on_postgres()) {
    // ctest gives the cluster's directory only to the pg.* copies: a copy that lost its
    // DUALTUNE_TEST_STORE would pass on SQLite without saying so.
    if (const char* d = std::getenv("DUALTUNE_TEST_PG_DIR"); d && *d)
      ADD_FAILURE() << "DUALTUNE_TEST_PG_DIR is set but DUALTUNE_TEST_STORE is not postgresql: expected this pg.* "
                       "test to run on PostgreSQL, found it about to run on SQLite";
    return dir;
  }
  const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
  return GalleryDatabases::get().url_for((test ? std::string(test->test_suite_name()) + "." + test->name() + " " : "") + dir);
}

/// The password of a postgresql://user:password@host URL ("" if it has none).
inline std::string url_password(const std::string& url) {
  std::string password;
  pg::strip_password(url, &password);
  return password;
}

}  // namespace dualtune::gallery::testenv

// What only the PostgreSQL store has: URLs and their masked form, refusing a server
// that is unreachable, credentials that are wrong, a database of another schema
// version or another application's tables (never printing the password), an atomic
// create, and the stored bytes of a vector (bytea, float32 little-endian).
#include <gtest/gtest.h>

#include "dualtune/gallery/gallery.h"
#include "dualtune/gallery/pg.h"
#include "dualtune/gallery/pg_store.h"
#include "dualtune/gallery/store.h"
#include "dualtune/util/error.h"
#include "gallery_fixtures.h"
#include "store_test_env.h"

using namespace dualtune::gallery;
using dualtune::Error;

namespace {

using dualtune::gallery::fixtures::error_of;

/// The password of a URL postgresql://user:PASSWORD@...
std::string password_of(const std::string& url) {
  const size_t s = url.find("://") + 3, c = url.find(':', s), at = url.find('@', s);
  return url.substr(c + 1, at - c - 1);
}

}  // namespace

TEST(PgUrl, NamesAndMasks) {
  EXPECT_TRUE(Store::is_url("postgresql://u@h:5432/db"));
  EXPECT_TRUE(Store::is_url("postgres://h/db"));
  EXPECT_FALSE(Store::is_url("galleries/postgresql"));
  EXPECT_EQ(pg::mask_url("postgresql://u:s3cret@h:5432/db"), "postgresql://u:***@h:5432/db");
  EXPECT_EQ(pg::mask_url("postgresql://u@h/db?password=s3cret&sslmode=disable"),
            "postgresql://u@h/db?password=***&sslmode=disable");
  EXPECT_EQ(pg::mask_url("postgresql://u@h/db"), "postgresql://u@h/db");
  EXPECT_EQ(Store::display_name("some/dir"), "some/dir");
  EXPECT_EQ(pg::text_array({"a", "b\"c", "d\\e"}), R"({"a","b\"c","d\\e"})");
  EXPECT_EQ(pg::int_array({3, -1}), "{3,-1}");
}

TEST(PgStore, RefusesWrongCredentialsAndUnreachableServersWithoutPrintingThePassword) {
  testenv::Database db;
  ASSERT_FALSE(db.url().empty());
  const std::string good_pw = password_of(db.url());
  std::string bad = db.url();
  bad.replace(bad.find(good_pw), good_pw.size(), "Wr0ngPassw0rd");
  const auto e = error_of([&] { Store::open(bad); });
  EXPECT_NE(e.find("password authentication failed"), std::string::npos) << e;
  EXPECT_NE(e.find(":***@127.0.0.1"), std::string::npos) << e;
  EXPECT_EQ(e.find("Wr0ngPassw0rd"), std::string::npos) << e;
  // Port 1 on loopback: nothing listens there.
  const std::string down = "postgresql://dualtune:" + good_pw + "@127.0.0.1:1/postgres?connect_timeout=5";
  const auto u = error_of([&] { Gallery::open(down); });
  EXPECT_NE(u.find("cannot connect to the PostgreSQL server"), std::string::npos) << u;
  EXPECT_NE(u.find("refused"), std::string::npos) << u;
  EXPECT_EQ(u.find(good_pw), std::string::npos) << u;
  const auto nodb = error_of([&] { Store::open(testenv::with_database(db.url(), "no_such_db")); });
  EXPECT_NE(nodb.find("\"no_such_db\" does not exist"), std::string::npos) << nodb;
  EXPECT_EQ(nodb.find(good_pw), std::string::npos) << nodb;
}

TEST(PgStore, RefusesAnotherSchemaVersionAndAnotherApplicationsTables) {
  testenv::Database db;
  ASSERT_FALSE(db.url().empty());
  Store::create(db.url());
  pg::Conn(db.url()).exec("UPDATE meta SET value = '99' WHERE key = 'schema_version'");
  const auto e = error_of([&] { Store::open(db.url()); });
  EXPECT_NE(e.find("expected gallery schema version 1, found 99 (written by another dualtune version)"),
            std::string::npos) << e;
  EXPECT_EQ(e.find(password_of(db.url())), std::string::npos) << e;

  testenv::Database other;
  pg::Conn(other.url()).exec("CREATE TABLE meta (key TEXT, value TEXT); CREATE TABLE items (x INT)");
  const auto f = error_of([&] { Store::open(other.url()); });
  EXPECT_NE(f.find("is not a dualtune gallery database: expected meta application 'dualtune-gallery', found ''"),
            std::string::npos) << f;

  // A database holding a table of the gallery's names: create fails and leaves nothing.
  testenv::Database clash;
  pg::Conn(clash.url()).exec("CREATE TABLE items (x INT)");
  const auto c = error_of([&] { Store::create(clash.url()); });
  EXPECT_NE(c.find("cannot create the gallery's tables"), std::string::npos) << c;
  EXPECT_EQ(pg::Conn(clash.url()).exec("SELECT to_regclass('models') IS NULL").get_text(0, 0), "t");
}

TEST(PgStore, VectorsAreFloat32LittleEndianBytea) {
  testenv::Database db;
  ASSERT_FALSE(db.url().empty());
  auto s = PgStore::create(db.url());
  const ModelInfo m = s->add_model("old", 2, "", "", Role::kDeployed);
  const float v[2] = {1.0f, -2.0f};  // IEEE 754: 0x3f800000, 0xc0000000
  s->add_items(fixtures::records({"k"}), {{m.version_id, 2, v}});
  EXPECT_EQ(s->conn().exec("SELECT encode(vec, 'hex') FROM embeddings").get_text(0, 0), "0000803f000000c0");
  // Every write transaction bumped the write sequence: create's add_model and add_items.
  EXPECT_EQ(s->data_version(), 2);
}

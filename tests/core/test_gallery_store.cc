// The SQLite gallery file: schema checks on open (foreign, corrupt, other version),
// import round trip and every bad input of `gallery create/import`. The store contract
// itself (round trip, all-or-nothing writes, immutable vectors) runs against both stores
// in tests/store/test_store_contract.cc.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "dualtune/gallery/gallery.h"
#include "dualtune/gallery/sqlite.h"
#include "dualtune/gallery/store.h"
#include "dualtune/util/error.h"
#include "gallery_fixtures.h"
#include "store_test_env.h"

using namespace dualtune::gallery;
using dualtune::Error;
namespace fs = std::filesystem;

namespace {

using dualtune::gallery::fixtures::error_of;
using dualtune::gallery::testenv::gallery_at;

}  // namespace

// SQLite only (ctest runs no pg. variant): the file in the directory is what is checked.
// PostgreSQL: PgStore.RefusesAnotherSchemaVersionAndAnotherApplicationsTables and
// StoreContract.OpeningWhereThereIsNoGallerySaysHowToMakeOne in test_store.
TEST(GalleryStore, RefusesFilesThatAreNotAGalleryOfThisSchema) {
  const auto dir = fixtures::temp_dir("store_foreign");
  EXPECT_NE(error_of([&] { Store::open(dir); }).find("no gallery at"), std::string::npos);
  {  // another application's SQLite database
    sql::Db db(Store::db_path(dir), true, false);
    db.exec("CREATE TABLE songs(id INTEGER)");
  }
  const auto foreign = error_of([&] { Store::open(dir); });
  EXPECT_NE(foreign.find("expected SQLite application_id 0x4454474c, found 0x00000000"), std::string::npos) << foreign;
  fs::remove(Store::db_path(dir));
  {  // random bytes
    std::ofstream(Store::db_path(dir)) << std::string(4096, 'x');
  }
  const auto corrupt = error_of([&] { Store::open(dir); });
  EXPECT_NE(corrupt.find("is not a dualtune gallery database (corrupt or foreign file)"), std::string::npos) << corrupt;
  fs::remove(Store::db_path(dir));
  {  // a gallery of another schema version
    Store::create(dir);
    sql::Db db(Store::db_path(dir), false, false);
    db.exec("PRAGMA user_version = 99");
  }
  const auto schema = error_of([&] { Store::open(dir); });
  EXPECT_NE(schema.find("expected gallery schema version 1, found 99"), std::string::npos) << schema;
}

TEST(GalleryImport, RoundTripsKeysLabelsAndVectorsAndRefusesBadInput) {
  const auto dir = fixtures::temp_dir("import");
  auto g = Gallery::create(gallery_at(dir), {"old", 4, "", ""});
  const int64_t n = 50;
  std::vector<std::string> keys, labels;
  std::vector<float> x;
  for (int64_t i = 0; i < n; ++i) {
    keys.push_back("img/" + std::to_string(i) + ".png");
    labels.push_back(std::to_string(i % 5));
    const auto v = fixtures::key_vector(keys.back(), 4, 0);
    x.insert(x.end(), v.begin(), v.end());
  }
  // Chunks of 7: several transactions.
  const auto rep = g->import_vectors("old", fixtures::records(keys, labels), 4, x.data(), false, 7);
  EXPECT_EQ(rep.added, n);
  EXPECT_EQ(rep.vectors, n);
  auto s = Store::open(gallery_at(dir), true);
  const auto rows = s->items();
  ASSERT_EQ(static_cast<int64_t>(rows.size()), n);
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(rows[i].record.key, keys[i]);
    EXPECT_EQ(rows[i].record.label, labels[i]);
    ids.push_back(rows[i].id);
  }
  std::vector<uint8_t> has;
  EXPECT_EQ(s->vectors_of(s->model("old").version_id, ids, has), x);

  // Bad input, each with what was expected and what was found.
  auto dup = fixtures::records({"new1", "new1"});
  EXPECT_NE(error_of([&] { g->import_vectors("old", dup, 4, x.data(), false); }).find("'new1' appears twice in the input"),
            std::string::npos);
  const auto again = error_of([&] { g->import_vectors("old", fixtures::records({keys[3]}), 4, x.data(), false); });
  EXPECT_NE(again.find("1 key is already in the gallery"), std::string::npos) << again;
  EXPECT_NE(again.find("--skip-existing"), std::string::npos);
  const auto skipped = g->import_vectors("old", fixtures::records({keys[3], "fresh"}), 4, x.data(), true);
  EXPECT_EQ(skipped.skipped, 1);
  EXPECT_EQ(skipped.added, 1);
  EXPECT_NE(error_of([&] { g->import_vectors("old", fixtures::records({"z"}), 3, x.data(), false); })
                .find("has embedding size 4, the vectors have 3"),
            std::string::npos);
  std::vector<float> nan = {1, std::nanf(""), 0, 0};
  EXPECT_NE(error_of([&] { g->import_vectors("old", fixtures::records({"z"}), 4, nan.data(), false); }).find("non-finite"),
            std::string::npos);
  g->rollout({"new", 4, "", ""});
  EXPECT_NE(error_of([&] { g->import_vectors("new", fixtures::records({"brand-new"}), 4, x.data(), false); })
                .find("new items must carry the deployed model's vector"),
            std::string::npos);
  EXPECT_NE(error_of([&] { g->import_vectors("nope", fixtures::records({"q"}), 4, x.data(), false); })
                .find("no model named 'nope'; the gallery has old (deployed), new (rolling_out)"),
            std::string::npos);
}

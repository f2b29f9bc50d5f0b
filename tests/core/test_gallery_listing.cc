// Gallery::list_items and Gallery::image_refs (used by `dualtune serve`): pages in id
// order with the versions each item has, and each item's key and image source.
#include <gtest/gtest.h>

#include "dualtune/gallery/gallery.h"
#include "dualtune/util/error.h"
#include "gallery_fixtures.h"
#include "store_test_env.h"

using namespace dualtune::gallery;
using dualtune::gallery::testenv::gallery_at;

TEST(GalleryListing, PagesInIdOrderWithTheVersionsEachItemHas) {
  const auto dir = fixtures::temp_dir("listing");
  auto g = Gallery::create(gallery_at(dir), {"old", 2, "", ""});
  const float old_v[8] = {1, 0, 0, 1, 1, 1, 2, 1};
  g->import_vectors("old", fixtures::records({"A", "B", "C", "D"}, {"x", "y", "x", ""}), 2, old_v, false);
  const auto nm = g->rollout({"new", 3, "", ""});
  const float new_c[3] = {0, 1, 0};
  g->import_vectors("new", fixtures::records({"C"}), 3, new_c, false);
  const int64_t old_version = g->model("old").version_id;

  std::vector<std::vector<int64_t>> versions;
  const auto page = g->list_items(1, 2, &versions);  // skips A: B, C
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].record.key, "B");
  EXPECT_EQ(page[0].record.label, "y");
  EXPECT_EQ(page[1].record.key, "C");
  ASSERT_EQ(versions.size(), 2u);
  EXPECT_EQ(versions[0], (std::vector<int64_t>{old_version}));
  EXPECT_EQ(versions[1], (std::vector<int64_t>{old_version, nm.version_id}));
  EXPECT_EQ(g->list_items(3, 10).size(), 1u);  // D only
  EXPECT_TRUE(g->list_items(4, 10).empty());
  EXPECT_THROW(g->list_items(-1, 10), dualtune::Error);
}

TEST(GalleryListing, ImageRefsGiveKeyAndSourceSpec) {
  const auto dir = fixtures::temp_dir("image_refs");
  auto g = Gallery::create(gallery_at(dir), {"old", 2, "", ""});
  const std::string spec = R"({"format":"files"})";
  auto recs = fixtures::records({"/img/a.png", "b"});
  recs[0].source_id = g->add_source(spec);
  const float v[4] = {1, 0, 0, 1};
  g->import_vectors("old", recs, 2, v, false);
  const auto rows = g->list_items(0, 2);
  const auto refs = g->image_refs({rows[1].id, rows[0].id});
  ASSERT_EQ(refs.size(), 2u);
  EXPECT_EQ(refs[0].item_id, rows[1].id);
  EXPECT_EQ(refs[0].key, "b");
  EXPECT_EQ(refs[0].source, "");  // imported without a source: no image known
  EXPECT_EQ(refs[1].key, "/img/a.png");
  EXPECT_EQ(refs[1].source, spec);
  EXPECT_THROW(g->image_refs({12345}), dualtune::Error);
}

// `gallery status` text: the table a user reads, including the empty gallery.
#include <gtest/gtest.h>

#include "dualtune/app/gallery_status.h"

using namespace dualtune;

namespace {

gallery::GalleryStatus status_with(int64_t items, int64_t embeddings, double backfilled) {
  gallery::GalleryStatus st;
  st.dir = "g";
  st.uuid = "u";
  st.items = items;
  gallery::ModelStatus m;
  m.model.name = "old";
  m.model.dim = 8;
  m.model.role = gallery::Role::kDeployed;
  m.model.path = "runs/old";
  m.embeddings = embeddings;
  m.backfilled = backfilled;
  st.models.push_back(m);
  return st;
}

}  // namespace

TEST(GalleryStatusText, EmptyGalleryShowsNoBackfilledFraction) {
  // The store reports backfilled = 1 for an empty gallery (nothing is left to embed);
  // the table must not read "100.0 %" beside 0 embeddings.
  const std::string text = app::gallery_status_text(status_with(0, 0, 1.0), false);
  EXPECT_EQ(text.find("100.0%"), std::string::npos) << text;
  EXPECT_NE(text.find("old              deployed          8            0          —  runs/old\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("gallery g (uuid u): 0 items\n"), std::string::npos) << text;
}

TEST(GalleryStatusText, FractionIsEmbeddingsOverItems) {
  // 3 of 4 items embedded: 75.0 %, right-aligned under "backfilled".
  const std::string text = app::gallery_status_text(status_with(4, 3, 0.75), false);
  EXPECT_NE(text.find("old              deployed          8            3      75.0%  runs/old\n"), std::string::npos)
      << text;
}

#pragma once
// Market-1501: root/{bounding_box_train, query, bounding_box_test} for the splits
// train, query, gallery. File names PPPP_cCsS_FFFFFF_NN.jpg: person id PPPP (4 digits,
// or "-1"), camera C, video sequence S, frame FFFFFF, bounding box NN.
// Labels and classes per split:
//   - pid -1 ("junk": bad detections) -> label -1, no class; evaluation ignores them;
//   - pid 0000 ("distractors", gallery only) -> the class "0000", which no query shares,
//     so the distractors are ordinary negatives in every ranking (the official
//     protocol; labelling them -1 would remove them and inflate mAP);
//   - every other pid -> a class named by its 4-digit string ("0002"), sorted.
// camera() = C. Non-image files are ignored; an image with a malformed name is an error.
#include <string>
#include <vector>

#include "dualtune/data/dataset.h"

namespace dualtune::data {

struct MarketName {
  int pid = 0;          ///< -1 junk, 0 distractor, else the person id
  std::string pid_text; ///< "-1", "0000", "0002", ...
  int cam = 0, seq = 0, frame = 0, index = 0;
};

/// Parses a Market-1501 file name (a basename or a path); throws naming it when malformed.
MarketName parse_market_name(const std::string& name);

class Market1501Dataset : public Dataset {
 public:
  /// split: train | query | gallery.
  Market1501Dataset(const std::string& root, const std::string& split);

  size_t size() const override { return files_.size(); }
  Image image(size_t i) const override;
  int64_t label(size_t i) const override { return labels_.at(i); }
  int64_t camera(size_t i) const override { return cameras_.at(i); }
  std::string path(size_t i) const override { return files_.at(i); }
  const ClassMap& classes() const override { return classes_; }

 private:
  std::vector<std::string> files_;
  std::vector<int64_t> labels_, cameras_;
  ClassMap classes_;
};

}  // namespace dualtune::data

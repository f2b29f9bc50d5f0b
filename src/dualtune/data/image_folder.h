#pragma once
// ImageFolder: root/<class>/<image>. Class names = the sub-directory names, sorted
// (byte order); images = files with extension jpg, jpeg, png or bmp (any case), sorted
// by name; other files and hidden entries are ignored. Images are decoded lazily with
// OpenCV (image_decode.h). A class directory without images, or a root without class
// directories, is an error.
#include <string>
#include <vector>

#include "dualtune/data/dataset.h"

namespace dualtune::data {

class ImageFolderDataset : public Dataset {
 public:
  explicit ImageFolderDataset(const std::string& root);

  size_t size() const override { return files_.size(); }
  Image image(size_t i) const override;
  int64_t label(size_t i) const override { return labels_.at(i); }
  std::string path(size_t i) const override { return files_.at(i); }
  const ClassMap& classes() const override { return classes_; }

 private:
  std::vector<std::string> files_;
  std::vector<int64_t> labels_;
  ClassMap classes_;
};

}  // namespace dualtune::data

// ImageFolder reader; layout in image_folder.h.
#include "dualtune/data/image_folder.h"

#include <algorithm>
#include <filesystem>

#include "dualtune/data/image_decode.h"
#include "dualtune/util/error.h"

namespace fs = std::filesystem;

namespace dualtune::data {

ImageFolderDataset::ImageFolderDataset(const std::string& root) {
  std::error_code ec;
  DT_CHECK(fs::is_directory(root, ec), "image folder ", root, ": expected a directory of class sub-directories, found ",
           fs::exists(root, ec) ? "a file" : "nothing");
  std::vector<std::string> class_dirs;
  for (const auto& e : fs::directory_iterator(root)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    if (e.is_directory()) class_dirs.push_back(name);
  }
  std::sort(class_dirs.begin(), class_dirs.end());
  DT_CHECK(!class_dirs.empty(), "image folder ", root, ": expected root/<class>/<image>, found no class directories");
  for (size_t c = 0; c < class_dirs.size(); ++c) {
    const fs::path dir = fs::path(root) / class_dirs[c];
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string name = e.path().filename().string();
      if (name.empty() || name[0] == '.' || !e.is_regular_file() || !has_image_extension(name)) continue;
      files.push_back(e.path().string());
    }
    DT_CHECK(!files.empty(), "image folder ", root, ": class directory ", dir.string(),
             " has no images (expected jpg, jpeg, png or bmp files)");
    std::sort(files.begin(), files.end());
    for (auto& f : files) {
      files_.push_back(std::move(f));
      labels_.push_back(static_cast<int64_t>(c));
    }
  }
  classes_ = ClassMap(std::move(class_dirs));
}

Image ImageFolderDataset::image(size_t i) const { return decode_image_file(files_.at(i)); }

}  // namespace dualtune::data

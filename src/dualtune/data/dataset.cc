// open_dataset: the reader for spec.format, then the class subset, then the item limit.
#include <algorithm>

#include "dualtune/data/class_subset.h"
#include "dualtune/data/idx.h"
#include "dualtune/data/image_folder.h"
#include "dualtune/data/market1501.h"
#include "dualtune/data/random.h"
#include "dualtune/data/subset.h"
#include "dualtune/util/error.h"

#include <filesystem>

namespace dualtune::data {

SubsetDataset::SubsetDataset(std::shared_ptr<const Dataset> base, std::vector<size_t> indices, ClassMap classes)
    : base_(std::move(base)), indices_(std::move(indices)), classes_(std::move(classes)) {
  const ClassMap& bc = base_->classes();
  std::vector<int64_t> remap(bc.size(), -1);
  for (size_t c = 0; c < bc.size(); ++c)
    if (auto l = classes_.label(bc.names()[c])) remap[c] = *l;
  labels_.reserve(indices_.size());
  for (size_t i : indices_) {
    DT_CHECK(i < base_->size(), "subset: index ", i, " out of range [0, ", base_->size(), ")");
    const int64_t l = base_->label(i);
    if (l < 0) {
      labels_.push_back(-1);
      continue;
    }
    DT_CHECK(remap[static_cast<size_t>(l)] >= 0, "subset: item ", base_->path(i), " has class '", bc.name(l),
             "', which is not in the subset's classes");
    labels_.push_back(remap[static_cast<size_t>(l)]);
  }
}

std::shared_ptr<Dataset> apply_class_subset(std::shared_ptr<const Dataset> base, const std::string& spec) {
  const std::vector<std::string> names = select_classes(base->classes().names(), spec);
  ClassMap selected(names);
  std::vector<char> keep(base->classes().size(), 0);
  for (const auto& n : names) keep[static_cast<size_t>(*base->classes().label(n))] = 1;
  std::vector<size_t> indices;
  for (size_t i = 0; i < base->size(); ++i) {
    const int64_t l = base->label(i);
    if (l >= 0 && keep[static_cast<size_t>(l)]) indices.push_back(i);
  }
  return std::make_shared<SubsetDataset>(std::move(base), std::move(indices), std::move(selected));
}

std::shared_ptr<Dataset> apply_limit(std::shared_ptr<const Dataset> base, int64_t limit) {
  DT_CHECK(limit > 0, "dataset limit: expected > 0, found ", limit);
  std::vector<size_t> order(base->size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::mt19937_64 rng(0);
  shuffle_portable(order, rng);
  order.resize(std::min(order.size(), static_cast<size_t>(limit)));
  std::sort(order.begin(), order.end());
  ClassMap classes = base->classes();
  return std::make_shared<SubsetDataset>(std::move(base), std::move(order), std::move(classes));
}

std::shared_ptr<Dataset> apply_shard(std::shared_ptr<const Dataset> base, int rank, int world) {
  DT_CHECK(world >= 1 && rank >= 0 && rank < world, "dataset shard: expected 0 <= rank < world, found rank ", rank,
           ", world ", world);
  std::vector<size_t> indices;
  for (size_t i = static_cast<size_t>(rank); i < base->size(); i += static_cast<size_t>(world)) indices.push_back(i);
  ClassMap classes = base->classes();
  return std::make_shared<SubsetDataset>(std::move(base), std::move(indices), std::move(classes));
}

std::shared_ptr<Dataset> open_dataset(const DatasetSpec& spec) {
  std::shared_ptr<Dataset> ds;
  if (spec.format == "idx") {
    ds = std::make_shared<IdxDataset>(spec.root, spec.split);
  } else if (spec.format == "image_folder") {
    const std::string root = spec.split.empty() ? spec.root : (std::filesystem::path(spec.root) / spec.split).string();
    ds = std::make_shared<ImageFolderDataset>(root);
  } else if (spec.format == "market1501") {
    ds = std::make_shared<Market1501Dataset>(spec.root, spec.split);
  } else {
    DT_THROW("dataset: expected format idx, image_folder or market1501, found '", spec.format, "'");
  }
  if (spec.classes != "all" && !spec.classes.empty()) ds = apply_class_subset(ds, spec.classes);
  if (spec.limit > 0) ds = apply_limit(ds, spec.limit);
  return ds;
}

}  // namespace dualtune::data

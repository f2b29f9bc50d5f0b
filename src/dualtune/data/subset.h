#pragma once
// SubsetDataset: a view of some items of another dataset, with labels remapped densely
// into a (possibly smaller) ClassMap. Used for class subsets and `limit`.
#include <memory>
#include <vector>

#include "dualtune/data/dataset.h"

namespace dualtune::data {

class SubsetDataset : public Dataset {
 public:
  /// @param base    the full dataset
  /// @param indices items of base to keep, in the order they appear here
  /// @param classes the view's classes; every kept item's base class name must be in it
  ///                (items labelled -1 stay -1)
  SubsetDataset(std::shared_ptr<const Dataset> base, std::vector<size_t> indices, ClassMap classes);

  size_t size() const override { return indices_.size(); }
  Image image(size_t i) const override { return base_->image(indices_.at(i)); }
  int64_t label(size_t i) const override { return labels_.at(i); }
  int64_t camera(size_t i) const override { return base_->camera(indices_.at(i)); }
  std::string path(size_t i) const override { return base_->path(indices_.at(i)); }
  const ClassMap& classes() const override { return classes_; }
  /// Index in the base dataset of item i.
  size_t base_index(size_t i) const { return indices_.at(i); }

 private:
  std::shared_ptr<const Dataset> base_;
  std::vector<size_t> indices_;
  std::vector<int64_t> labels_;
  ClassMap classes_;
};

/// Keeps the items of the classes selected by `spec` (class_subset.h); labels are remapped
/// densely in the dataset's class order; junk items (label -1) are dropped unless spec is "all".
std::shared_ptr<Dataset> apply_class_subset(std::shared_ptr<const Dataset> base, const std::string& spec);

/// Keeps `limit` items: the first `limit` of a fixed permutation (seed 0) of all items,
/// returned in ascending index order, so every class keeps roughly its share.
std::shared_ptr<Dataset> apply_limit(std::shared_ptr<const Dataset> base, int64_t limit);

/// Shard `rank` of `world` ranks: the items i with i % world == rank, in order, same
/// classes. The shards of all ranks partition the dataset (sharded prototype and test
/// passes of distributed training sum per-shard results).
std::shared_ptr<Dataset> apply_shard(std::shared_ptr<const Dataset> base, int rank, int world);

}  // namespace dualtune::data

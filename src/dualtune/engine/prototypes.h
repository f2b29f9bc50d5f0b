#pragma once
// Class prototypes in the old embedding space (Dual-Tuning):
//   P[c] = (1 / |X_c|) Σ_{x ∈ X_c} φo(x)   for every class c of the new training set,
// computed once with the frozen old model and the test-time transform.
// On disk: DIR/prototypes.npy (float32 C × Do) + DIR/classes.json (names of the rows).
#include <torch/torch.h>

#include <string>

#include "dualtune/data/class_map.h"
#include "dualtune/features/feature_set.h"

namespace dualtune::engine {

struct Prototypes {
  torch::Tensor matrix;  ///< C × Do
  data::ClassMap classes;
};

/// Per-class sums and counts, the additive half of class_means: distributed training
/// sums them over the ranks' shards of the training set (all-reduce), then takes means.
struct ClassSums {
  torch::Tensor sum;    ///< C × Do, float64
  torch::Tensor count;  ///< C, float64
  std::vector<std::string> class_names;
};
ClassSums class_sums(const features::FeatureSet& features);
/// sum / count per class (float32); throws naming a class without images.
Prototypes means_of(const ClassSums& sums);

/// Class means of features (labels index class_names); throws naming an empty class.
Prototypes class_means(const features::FeatureSet& features);

void save_prototypes(const std::string& dir, const Prototypes& p);
/// Loads DIR and reorders the rows to `expected` (the new training set's class map);
/// a class missing from the file is an error naming it.
Prototypes load_prototypes(const std::string& dir, const data::ClassMap& expected);

}  // namespace dualtune::engine

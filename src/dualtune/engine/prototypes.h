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

/// Class means of features (labels index class_names); throws naming an empty class.
Prototypes class_means(const features::FeatureSet& features);

void save_prototypes(const std::string& dir, const Prototypes& p);
/// Loads DIR and reorders the rows to `expected` (the new training set's class map);
/// a class missing from the file is an error naming it.
Prototypes load_prototypes(const std::string& dir, const data::ClassMap& expected);

}  // namespace dualtune::engine

#include "dualtune/models/exported_old_model.h"

#include "dualtune/features/npy.h"
#include "dualtune/util/error.h"

namespace dualtune::models {

ExportedOldModel::ExportedOldModel(std::string kind, std::string path, const std::string& class_map,
                                   const std::string& classifier_npy)
    : kind_(std::move(kind)), path_(std::move(path)) {
  DT_CHECK(!class_map.empty(), kind_, " old model ", path_,
           " needs its class map (old.class_map: JSON {\"classes\": [...]})");
  classes_ = data::ClassMap::load(class_map);
  if (classifier_npy.empty()) return;
  const auto a = npy::load(classifier_npy);
  DT_CHECK(a.is_float() && a.shape.size() == 2, classifier_npy,
           ": expected a float Co × Do matrix for the old classifier, found dtype ", npy::dtype_name(a.descr), " with ",
           a.shape.size(), " dimensions");
  DT_CHECK(a.shape[0] == static_cast<int64_t>(classes_.size()), classifier_npy, ": old classifier has ", a.shape[0],
           " rows but the class map ", class_map, " has ", classes_.size(), " classes");
  head_.weight = torch::from_blob(const_cast<float*>(a.f32.data()), {a.shape[0], a.shape[1]}).clone();
}

torch::Tensor ExportedOldModel::checked_embedding(const torch::Tensor& out, int64_t batch) {
  DT_CHECK(out.dim() == 2 && out.size(0) == batch, kind_, " old model ", path_,
           " must return a B × D embedding (B = ", batch, "), returned shape ", out.sizes());
  if (dim_ < 0) {
    dim_ = out.size(1);
    DT_CHECK(!head_.weight.defined() || head_.weight.size(1) == dim_, "old classifier width ", head_.weight.size(1),
             " != old embedding size ", dim_, " of ", path_);
  }
  DT_CHECK(out.size(1) == dim_, kind_, " old model ", path_, " returned ", out.size(1), " components after ", dim_);
  return out.to(torch::kFloat);
}

std::string ExportedOldModel::classes_summary() const {
  return std::to_string(classes_.size()) + " classes" + (head_.weight.defined() ? ", classifier given" : ", no classifier");
}

}  // namespace dualtune::models

#include "dualtune/models/classifier.h"

namespace F = torch::nn::functional;

namespace dualtune::models {

ClassifierImpl::ClassifierImpl(int64_t dim, int64_t num_classes, bool normalized_, double scale_)
    : normalized(normalized_), scale(scale_) {
  weight = register_parameter("weight", torch::empty({num_classes, dim}));
  torch::nn::init::normal_(weight, 0.0, 0.01);
}

torch::Tensor ClassifierImpl::cosine(const torch::Tensor& e) {
  return torch::mm(F::normalize(e, F::NormalizeFuncOptions().dim(1)),
                   F::normalize(weight, F::NormalizeFuncOptions().dim(1)).t());
}

torch::Tensor ClassifierImpl::forward(const torch::Tensor& e) {
  if (normalized) return scale * cosine(e);
  return torch::mm(e, weight.t());
}

}  // namespace dualtune::models

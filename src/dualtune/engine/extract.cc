#include "dualtune/engine/extract.h"

#include "dualtune/data/loader.h"
#include "dualtune/engine/open_old_model.h"
#include "dualtune/models/old_model.h"
#include "dualtune/util/error.h"

namespace dualtune::engine {

features::FeatureSet extract_features(const Embedder& embed, std::shared_ptr<const data::Dataset> dataset,
                                      const data::TransformOptions& transform, int64_t batch_size, int workers) {
  data::TransformOptions tf = transform;
  tf.train = false;
  data::LoaderOptions lo;
  lo.batch_size = batch_size;
  lo.shuffle = false;
  lo.workers = workers;
  data::Loader loader(dataset, tf, lo);
  loader.start_epoch(0);

  features::FeatureSet fs;
  fs.n = static_cast<int64_t>(dataset->size());
  fs.labels.resize(fs.n);
  fs.cams.resize(fs.n);
  fs.paths.resize(fs.n);
  fs.class_names = dataset->classes().names();
  torch::NoGradGuard no_grad;
  data::Batch batch;
  while (loader.next(batch)) {
    const auto x = torch::from_blob(batch.images.data(), {batch.n, batch.c, batch.h, batch.w});
    const auto e = embed(x).to(torch::kCPU).contiguous().to(torch::kFloat);
    DT_CHECK(e.dim() == 2 && e.size(0) == batch.n, "model returned shape ", e.sizes(), " for a batch of ", batch.n);
    if (fs.d == 0) {
      fs.d = e.size(1);
      fs.features.resize(static_cast<size_t>(fs.n * fs.d));
    }
    const float* src = e.data_ptr<float>();
    for (int64_t i = 0; i < batch.n; ++i) {
      const int64_t idx = batch.indices[i];
      std::copy(src + i * fs.d, src + (i + 1) * fs.d, fs.features.begin() + idx * fs.d);
      fs.labels[idx] = batch.labels[i];
      fs.cams[idx] = batch.cameras[i];
      fs.paths[idx] = dataset->path(static_cast<size_t>(idx));
    }
  }
  return fs;
}

Embedder embedder_for(const std::string& model_path, const std::string& class_map, const std::string& precision,
                      const std::string& device) {
  auto model = open_old_model(model_path, class_map, "", precision, device);
  return [model](const torch::Tensor& x) { return model->embed_on(x); };
}

}  // namespace dualtune::engine

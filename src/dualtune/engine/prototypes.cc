#include "dualtune/engine/prototypes.h"

#include <filesystem>

#include "dualtune/features/npy.h"
#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"

namespace dualtune::engine {

ClassSums class_sums(const features::FeatureSet& fs) {
  const int64_t c = static_cast<int64_t>(fs.class_names.size());
  DT_CHECK(c > 0, "prototypes need the class names of the feature set");
  ClassSums s;
  s.sum = torch::zeros({c, fs.d}, torch::kFloat64);
  s.count = torch::zeros({c}, torch::kFloat64);
  s.class_names = fs.class_names;
  auto* sum = s.sum.data_ptr<double>();
  auto* count = s.count.data_ptr<double>();
  for (int64_t i = 0; i < fs.n; ++i) {
    const int64_t y = fs.labels[i];
    if (y < 0) continue;
    DT_CHECK(y < c, "label ", y, " of item ", i, " outside [0, ", c, ")");
    count[y] += 1;
    for (int64_t j = 0; j < fs.d; ++j) sum[y * fs.d + j] += fs.features[i * fs.d + j];
  }
  return s;
}

Prototypes means_of(const ClassSums& s) {
  const int64_t c = s.sum.size(0), d = s.sum.size(1);
  const auto sum = s.sum.contiguous(), count = s.count.contiguous();
  const auto* sp = sum.data_ptr<double>();
  const auto* cp = count.data_ptr<double>();
  Prototypes p;
  p.matrix = torch::empty({c, d});
  auto* out = p.matrix.data_ptr<float>();
  for (int64_t y = 0; y < c; ++y) {
    DT_CHECK(cp[y] > 0, "class '", s.class_names[y], "' has no training images: cannot compute its prototype");
    for (int64_t j = 0; j < d; ++j) out[y * d + j] = static_cast<float>(sp[y * d + j] / cp[y]);
  }
  p.classes = data::ClassMap(s.class_names);
  return p;
}

Prototypes class_means(const features::FeatureSet& fs) { return means_of(class_sums(fs)); }

void save_prototypes(const std::string& dir, const Prototypes& p) {
  ensure_writable_dir(dir);
  const auto m = p.matrix.contiguous();
  npy::save_f32(dir + "/prototypes.npy", m.data_ptr<float>(), {m.size(0), m.size(1)});
  p.classes.save(dir + "/classes.json");
}

Prototypes load_prototypes(const std::string& dir, const data::ClassMap& expected) {
  const auto a = npy::load(dir + "/prototypes.npy");
  DT_CHECK(a.descr == "<f4" && a.shape.size() == 2, dir, "/prototypes.npy: expected a float32 C × D matrix");
  const auto names = data::ClassMap::load(dir + "/classes.json");
  DT_CHECK(a.shape[0] == static_cast<int64_t>(names.size()), dir, "/prototypes.npy has ", a.shape[0],
           " rows but classes.json names ", names.size(), " classes");
  const int64_t d = a.shape[1];
  Prototypes p;
  p.classes = expected;
  p.matrix = torch::empty({static_cast<int64_t>(expected.size()), d});
  for (size_t c = 0; c < expected.size(); ++c) {
    const auto row = names.label(expected.name(static_cast<int64_t>(c)));
    DT_CHECK(row.has_value(), dir, ": no prototype for class '", expected.name(static_cast<int64_t>(c)), "'");
    std::copy(a.f32.begin() + *row * d, a.f32.begin() + (*row + 1) * d, p.matrix.data_ptr<float>() + c * d);
  }
  return p;
}

}  // namespace dualtune::engine

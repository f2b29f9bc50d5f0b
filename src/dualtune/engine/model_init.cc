#include "dualtune/engine/model_init.h"

#include <filesystem>
#include <map>
#include <sstream>

#include "dualtune/engine/checkpoint.h"
#include "dualtune/models/state_dict_file.h"
#include "dualtune/util/error.h"
#include "dualtune/util/run_dir.h"

namespace fs = std::filesystem;

namespace dualtune::engine {
namespace {

constexpr size_t kFirstFew = 5;  // names quoted per category in an error

struct Source {
  models::NamedTensors tensors;
  std::string kind;
  bool classes_match = false;  ///< a directory whose classes.json equals the training classes
};

Source open_source(const std::string& path, const data::ClassMap& classes) {
  DT_CHECK(fs::exists(path), "model.init: ", path, " does not exist (expected a TorchScript file, a torch.save ",
           "state dict or a dualtune run / export directory)");
  Source s;
  if (!fs::is_directory(path)) {
    s.kind = models::state_dict_file_kind(path);
    s.tensors = models::read_state_dict_file(path);
    return s;
  }
  auto model = load_run_model(path);  // a run (checkpoint.pt) or an export (state_dict.pt)
  s.kind = fs::exists(RunPaths{path}.checkpoint()) ? "run directory" : "dualtune export";
  for (const auto& p : model->named_parameters()) s.tensors.emplace_back(p.key(), p.value().detach());
  for (const auto& b : model->named_buffers()) s.tensors.emplace_back(b.key(), b.value().detach());
  s.classes_match = data::ClassMap::load(RunPaths{path}.classes()).names() == classes.names();
  return s;
}

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

std::string shape(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

template <class T, class F>
std::string first_few(const std::vector<T>& v, F&& name) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < kFirstFew; ++i) s += (i ? ", " : "") + name(v[i]);
  if (v.size() > kFirstFew) s += ", ... (" + std::to_string(v.size() - kFirstFew) + " more)";
  return s;
}

}  // namespace

nlohmann::json InitReport::summary_json() const {
  return {{"path", path},
          {"kind", kind},
          {"strict", strict},
          {"loaded", loaded.size()},
          {"missing", missing.size()},
          {"unexpected", unexpected.size()},
          {"mismatched", mismatched.size()},
          {"new", fresh.size()},
          {"report", "init_report.json"}};
}

nlohmann::json InitReport::to_json() const {
  nlohmann::json j = summary_json();
  j.erase("report");
  j["name_mapping"] = {{"module_prefix_stripped", module_prefix}, {"matched_as_backbone", backbone_prefix}};
  j["loaded"] = loaded;
  j["missing"] = missing;
  j["unexpected"] = unexpected;
  j["mismatched"] = nlohmann::json::array();
  for (const auto& m : mismatched) j["mismatched"].push_back({{"name", m.name}, {"source", m.source}, {"model", m.model}});
  j["new"] = nlohmann::json::array();
  for (const auto& f : fresh) j["new"].push_back({{"name", f.name}, {"reason", f.reason}});
  return j;
}

std::string InitReport::summary() const {
  std::ostringstream os;
  os << "model.init " << path << " (" << kind << "): " << loaded.size() << " tensors loaded, " << missing.size()
     << " missing, " << mismatched.size() << " mismatched, " << unexpected.size() << " unexpected, " << fresh.size()
     << " new";
  if (!fresh.empty()) os << " (" << first_few(fresh, [](const Fresh& f) { return f.name; }) << ")";
  return os.str();
}

InitReport initialize_model(const ModelInitOptions& options, models::EmbeddingModelImpl& model,
                            const data::ClassMap& classes) {
  InitReport r;
  r.path = options.path;
  r.strict = options.strict;
  const Source src = open_source(options.path, classes);
  r.kind = src.kind;

  // The model's tensors by name, in its order.
  std::vector<std::pair<std::string, torch::Tensor>> targets;
  for (const auto& p : model.named_parameters()) targets.emplace_back(p.key(), p.value());
  for (const auto& b : model.named_buffers()) targets.emplace_back(b.key(), b.value());
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < targets.size(); ++i) index[targets[i].first] = i;

  // Source name -> model name (the mapping of model_init.h).
  std::map<std::string, torch::Tensor> by_target;
  for (const auto& [raw, t] : src.tensors) {
    std::string name = raw;
    bool stripped = false;
    while (starts_with(name, "module.")) name = name.substr(7), stripped = true;
    r.module_prefix += stripped;
    if (!index.count(name) && index.count("backbone." + name)) name = "backbone." + name, ++r.backbone_prefix;
    if (!index.count(name)) {
      r.unexpected.push_back(raw);
      continue;
    }
    by_target[name] = t;
  }

  std::vector<InitReport::Mismatch> backbone_mismatch;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;  // (model tensor, source tensor), after the checks
  for (const auto& [name, target] : targets) {
    const bool in_backbone = starts_with(name, "backbone.");
    const auto it = by_target.find(name);
    if (it == by_target.end()) {
      if (in_backbone) r.missing.push_back(name);
      else r.fresh.push_back({name, "not in the source"});
      continue;
    }
    const auto& t = it->second;
    if (t.sizes() != target.sizes()) {
      InitReport::Mismatch m{name, t.sizes().vec(), target.sizes().vec()};
      r.mismatched.push_back(m);
      if (in_backbone) backbone_mismatch.push_back(m);
      else r.fresh.push_back({name, "shape " + shape(m.source) + " in the source, " + shape(m.model) + " here"});
      continue;
    }
    if (starts_with(name, "classifier.") && !src.classes_match) {
      r.fresh.push_back({name, src.kind == "run directory" || src.kind == "dualtune export"
                                   ? "the source was trained on other classes"
                                   : "a file does not say which class each row is"});
      continue;
    }
    copies.emplace_back(target, t);
    r.loaded.push_back(name);
  }

  const auto is_optional = [](const std::string& n) { return ends_with(n, "num_batches_tracked"); };
  std::vector<std::string> missing_required, unexpected_strict;
  for (const auto& n : r.missing)
    if (!is_optional(n)) missing_required.push_back(n);
  for (const auto& n : r.unexpected) {
    std::string bare = n;
    while (starts_with(bare, "module.")) bare = bare.substr(7);
    if (!starts_with(bare, "fc.")) unexpected_strict.push_back(n);
  }
  const auto quote = [](const std::string& s) { return s; };
  const std::string fits = model.spec.backbone + " (in_channels " + std::to_string(model.spec.in_channels) + ")";
  DT_CHECK(!r.loaded.empty(), "model.init ", options.path, " (", src.kind, "): no tensor matches ", fits,
           " by name and shape; the source has ", first_few(src.tensors, [](const auto& p) { return p.first; }),
           "; the model expects ", first_few(targets, [](const auto& p) { return p.first; }),
           ". Is it another architecture?");
  if (options.strict && (!backbone_mismatch.empty() || !missing_required.empty() || !unexpected_strict.empty())) {
    std::ostringstream os;
    os << "model.init " << options.path << " (" << src.kind << ") does not fit " << fits << ":";
    if (!backbone_mismatch.empty())
      os << " " << backbone_mismatch.size() << " shape mismatches ("
         << first_few(backbone_mismatch,
                      [](const InitReport::Mismatch& m) {
                        return m.name + ": source " + shape(m.source) + ", model " + shape(m.model);
                      })
         << ");";
    if (!missing_required.empty())
      os << " " << missing_required.size() << " backbone tensors missing (" << first_few(missing_required, quote) << ");";
    if (!unexpected_strict.empty())
      os << " " << unexpected_strict.size() << " source tensors with no place in the model ("
         << first_few(unexpected_strict, quote) << ");";
    os << " " << r.loaded.size() << " would load. Set model.init_strict: false to load the matching subset.";
    DT_THROW(os.str());
  }
  torch::NoGradGuard no_grad;
  for (auto& [target, t] : copies) target.copy_(t.to(target.dtype()));  // keeps the target's (channels-last) layout
  return r;
}

}  // namespace dualtune::engine

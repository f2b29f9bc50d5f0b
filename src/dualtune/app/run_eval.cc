#include "dualtune/app/run_eval.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "dualtune/data/class_map.h"
#include "dualtune/eval/class_diagnostics.h"
#include "dualtune/eval/evaluate.h"
#include "dualtune/eval/mixed_gallery.h"
#include "dualtune/eval/search.h"
#include "dualtune/features/npy.h"
#include "dualtune/report/diagnostics.h"
#include "dualtune/report/report.h"
#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"

namespace fs = std::filesystem;

namespace dualtune::app {
namespace {

/// Writes the top-k neighbours of every (query model, gallery model) case as
/// <q>__<g>.indices.npy (int64 nq×k) and .scores.npy (float32 nq×k). For loo the
/// query itself is removed from its own list.
void dump_topk(const std::vector<eval::ModelFeatures>& models, bool loo, int64_t k, const std::string& dir) {
  ensure_writable_dir(dir);
  for (const auto& q : models) {
    for (const auto& g : models) {
      const int64_t kk = std::min<int64_t>(loo ? k + 1 : k, std::max<int64_t>(g.gallery.n, 1));
      std::vector<float> scores;
      std::vector<int64_t> ids;
      eval::search_topk(q.query.n, q.query.d, q.query.features.data(), g.gallery.n, g.gallery.d, g.gallery.features.data(),
                  kk, scores, ids);
      const int64_t out_k = loo ? kk - 1 : kk;
      std::vector<float> s_out(static_cast<size_t>(q.query.n * out_k));
      std::vector<int64_t> i_out(static_cast<size_t>(q.query.n * out_k));
      for (int64_t i = 0; i < q.query.n; ++i) {
        int64_t w = 0;
        for (int64_t c = 0; c < kk && w < out_k; ++c) {
          const int64_t id = ids[i * kk + c];
          if (loo && id == i) continue;  // self-match
          s_out[i * out_k + w] = scores[i * kk + c];
          i_out[i * out_k + w] = id;
          ++w;
        }
      }
      const std::string stem = (fs::path(dir) / (q.name + "__" + g.name)).string();
      npy::save_i64(stem + ".indices.npy", i_out.data(), {q.query.n, out_k});
      npy::save_f32(stem + ".scores.npy", s_out.data(), {q.query.n, out_k});
    }
  }
}

}  // namespace

FeatureSpec parse_feature_spec(const std::string& spec, const std::string& protocol) {
  const size_t eq = spec.find('=');
  DT_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < spec.size(), "--features: expected NAME=DIR",
           protocol == "reid" ? " or NAME=QUERY_DIR,GALLERY_DIR" : "", ", found '", spec, "'");
  FeatureSpec f;
  f.name = spec.substr(0, eq);
  for (char c : f.name) {
    DT_CHECK(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.',
             "--features: model name may contain only letters, digits, '-', '_', '.', found '", f.name, "'");
  }
  const std::string rest = spec.substr(eq + 1);
  const size_t comma = rest.find(',');
  if (protocol == "reid") {
    DT_CHECK(comma != std::string::npos && comma > 0 && comma + 1 < rest.size(),
             "--features (reid): expected NAME=QUERY_DIR,GALLERY_DIR, found '", spec, "'");
    f.query_dir = rest.substr(0, comma);
    f.gallery_dir = rest.substr(comma + 1);
  } else {
    DT_CHECK(comma == std::string::npos, "--features (loo): expected NAME=DIR (one directory), found '", spec, "'");
    f.query_dir = f.gallery_dir = rest;
  }
  return f;
}

eval::UpgradeSpec parse_upgrade_spec(const std::string& spec) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t end = spec.find(':', start);
    parts.push_back(spec.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  const bool ok = (parts.size() == 2 || parts.size() == 3) &&
                  std::none_of(parts.begin(), parts.end(), [](const std::string& p) { return p.empty(); });
  DT_CHECK(ok, "--upgrade: expected NEW:OLD or NEW:OLD:GALLERY (model names given with --features), found '", spec,
           "'");
  return {parts[0], parts[1], parts.size() == 3 ? parts[2] : std::string()};
}

std::set<std::string> load_class_names(const std::string& path) {
  const std::string file = fs::is_directory(path) ? (fs::path(path) / "classes.json").string() : path;
  const auto names = data::ClassMap::load(file).names();
  return {names.begin(), names.end()};
}

int run_eval(const EvalCliOptions& opt, std::ostream& out) {
  DT_CHECK(!opt.features.empty(), "eval: expected at least one --features NAME=DIR, found none");
  DT_CHECK(!opt.out_dir.empty(), "eval: expected --out DIR, found none");
  DT_CHECK(opt.max_block_mb > 0, "eval: expected --max-block-mb > 0, found ", opt.max_block_mb);
  DT_CHECK(opt.topk >= 0, "eval: expected --topk >= 0, found ", opt.topk);
  eval::EvalOptions eo;
  eo.protocol = opt.protocol;
  eo.max_block_bytes = opt.max_block_mb << 20;
  eo.seed = opt.seed;
  eo.threads = opt.threads;
  eo.mixed_fractions = eval::parse_fractions(opt.mixed);
  eo.progress = [](const std::string& line) { std::cerr << "eval: " << line << "\n"; };
  eo.keep_case_queries = opt.diagnose;  // the diagnostics reuse them
  DT_CHECK(opt.lineage.empty() || opt.upgrades.empty(), "eval: give --lineage or --upgrade, not both");
  for (const auto& u : opt.upgrades) eo.upgrades.push_back(parse_upgrade_spec(u));
  if (!opt.lineage.empty()) {
    std::vector<std::string> lineage;
    std::stringstream ss(opt.lineage);
    for (std::string name; std::getline(ss, name, ',');) lineage.push_back(name);
    DT_CHECK(lineage.size() >= 2, "--lineage: expected at least two model names, oldest first, found '", opt.lineage,
             "'");
    eo.upgrades = eval::lineage_upgrades(lineage);
    eo.generation_mixes = eval::lineage_mixes(lineage);
  }
  const bool loo = opt.protocol == "loo";
  DT_CHECK(loo || opt.protocol == "reid", "eval: --protocol: expected loo or reid, found '", opt.protocol, "'");
  DT_CHECK(!opt.diagnose || loo, "eval: --diagnose needs --protocol loo, found '", opt.protocol, "'");
  DT_CHECK(opt.seen_classes.empty() || opt.diagnose, "eval: --seen-classes is used only with --diagnose");
  const std::set<std::string> seen = opt.seen_classes.empty() ? std::set<std::string>{} : load_class_names(opt.seen_classes);
  ensure_writable_dir(opt.out_dir);  // fail before the long work

  std::vector<eval::ModelFeatures> models;
  for (const auto& s : opt.features) {
    const FeatureSpec f = parse_feature_spec(s, opt.protocol);
    if (loo) {
      models.push_back(eval::loo_model(f.name, features::FeatureSet::load(f.query_dir)));
    } else {
      models.push_back({f.name, features::FeatureSet::load(f.query_dir), features::FeatureSet::load(f.gallery_dir)});
    }
  }
  std::string old_model = opt.old_model;
  if (old_model.empty() && !eo.upgrades.empty()) old_model = eo.upgrades.front().old_model;
  const eval::CompatibilityReport rep = eval::evaluate_compatibility(models, old_model, eo);
  report::write_report(rep, opt.out_dir);
  if (opt.topk > 0) dump_topk(models, loo, opt.topk, (fs::path(opt.out_dir) / "topk").string());
  out << report::markdown_summary(rep) << "\nreport: " << (fs::path(opt.out_dir) / "report.md").string() << "\n";
  if (opt.diagnose) {
    const auto d = eval::diagnose_all(models, rep.old_model, seen, eo, &rep);
    report::write_diagnostics(d, opt.out_dir);
    out << "\n" << report::diagnostics_markdown(d) << "\ndiagnostics: "
        << (fs::path(opt.out_dir) / "diagnostics.md").string() << "\n";
  }
  return 0;
}

}  // namespace dualtune::app

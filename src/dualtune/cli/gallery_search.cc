// dualtune gallery search: top-k items for query embeddings (a feature file) or query
// images (embedded by the query model), over the mixed gallery.
#include <chrono>
#include <cstdio>
#include <algorithm>
#include <map>
#include <sstream>

#include "dualtune/cli/gallery_common.h"
#include "dualtune/engine/settings.h"
#include "dualtune/eval/similarity.h"
#include "dualtune/features/feature_set.h"
#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"

namespace dualtune::cli {

namespace {

struct SearchCommandOptions {
  std::string dir, model, features, list, out, merge, index = "flat";
  DataOptions data;
  gallery::AnnOptions ann;
  int64_t k = 10;
  int64_t show = 3;
  bool recall = false;
  int threads = 0;
};

/// Query images, embedded by the query model (labels are not needed).
features::FeatureSet embed_queries(const gallery::ModelInfo& m, const SearchCommandOptions& o) {
  features::FeatureSet q;
  auto emb = gallery_embedder(m, o.data);
  const auto images = image_items(o.data, o.list, m.path);
  const auto& items = images.items;
  std::vector<std::vector<gallery::ImageRef>> batches(1);
  for (const auto& it : items) {
    if (batches.back().size() == 256) batches.emplace_back();
    batches.back().push_back({static_cast<int64_t>(q.paths.size()), it.key, images.source});
    q.paths.push_back(it.key);
  }
  q.n = static_cast<int64_t>(items.size());
  q.d = emb->dim();
  q.features.resize(static_cast<size_t>(q.n * q.d));
  emb->embed(batches, [&](gallery::EmbeddedBatch& eb) {
    for (size_t i = 0; i < eb.item_ids.size(); ++i) {
      DT_CHECK(eb.errors[i].empty(), "gallery search: query ", q.paths[eb.item_ids[i]], ": ", eb.errors[i]);
      std::copy_n(eb.vectors.begin() + i * q.d, q.d, q.features.begin() + eb.item_ids[i] * q.d);
    }
    return true;
  });
  return q;
}

/// Share of the exact top-k (e) that the approximate top-k (r) found.
double recall_at_k(const gallery::SearchResult& r, const gallery::SearchResult& e, int64_t nq) {
  int64_t hit = 0, total = 0;
  for (int64_t i = 0; i < nq; ++i) {
    for (int64_t j = 0; j < r.k; ++j) {
      const int64_t want = e.ids[i * r.k + j];
      if (want < 0) continue;
      ++total;
      for (int64_t l = 0; l < r.k; ++l) hit += r.ids[i * r.k + l] == want;
    }
  }
  return total ? double(hit) / double(total) : 1.0;
}

void run_search(const SearchCommandOptions& o) {
  engine::set_threads(o.threads);
  eval::set_num_threads(o.threads);
  auto gal = open_gallery(o.dir, true);
  const gallery::ModelInfo m = o.model.empty() ? gal->target_model() : gal->model(o.model);
  const features::FeatureSet q = !o.features.empty() ? features::FeatureSet::load(o.features, false) : embed_queries(m, o);
  DT_CHECK(q.n > 0, "gallery search: no queries given (expected --features, a dataset or --list)");
  gallery::SearchOptions so;
  so.k = o.k;
  if (!o.merge.empty()) so.merge = gallery::parse_merge(o.merge);
  so.index = o.index;
  so.ann = o.ann;
  // The first search loads (or builds) the caches; the timed one is the second.
  gal->search(m.name, 1, q.features.data(), q.d, so);
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = gal->search(m.name, q.n, q.features.data(), q.d, so);
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::map<int64_t, std::string> version_names;
  for (const auto& v : gal->status().versions) version_names[v.version.id] = v.version.name;
  const auto rows = gal->items(r.ids);
  std::ostringstream tsv;
  tsv << "query\trank\titem\tscore\tkey\tversion\n";
  for (int64_t i = 0; i < q.n; ++i) {
    const std::string qk = q.paths.empty() || q.paths[i].empty() ? std::to_string(i) : q.paths[i];
    for (int64_t j = 0; j < r.k; ++j) {
      const size_t p = static_cast<size_t>(i * r.k + j);
      if (r.ids[p] < 0) break;
      tsv << qk << "\t" << j + 1 << "\t" << rows[p].record.key << "\t" << r.scores[p] << "\t" << r.keys[p] << "\t"
          << version_names[r.versions[p]] << "\n";
      if (i < o.show)
        std::printf("%s  #%lld  %s  score %.4f  (%s)\n", qk.c_str(), static_cast<long long>(j + 1),
                    rows[p].record.key.c_str(), r.scores[p], version_names[r.versions[p]].c_str());
    }
  }
  if (!o.out.empty()) write_text_atomic(o.out, tsv.str());
  std::printf("%lld queries of %s, k = %lld, merge %s, index %s: %.3f s (%.0f queries/s)\n",
              static_cast<long long>(q.n), m.name.c_str(), static_cast<long long>(r.k), gallery::merge_name(r.merge),
              o.index.c_str(), sec, double(q.n) / std::max(sec, 1e-9));
  if (o.recall && o.index != "flat") {
    gallery::SearchOptions exact = so;
    exact.index = "flat";
    const auto e = gal->search(m.name, q.n, q.features.data(), q.d, exact);
    std::printf("recall@%lld against exact search: %.4f\n", static_cast<long long>(r.k), recall_at_k(r, e, q.n));
  }
}

}  // namespace

void add_search_command(CLI::App& gallery) {
  auto o = std::make_shared<SearchCommandOptions>();
  auto* c = gallery.add_subcommand("search", "Top-k gallery items for queries of a model: a new model's queries are "
                                             "scored against each item's newest embedding in its space (docs/GALLERY.md)");
  c->add_option("dir", o->dir, "gallery: a directory, or a postgresql://USER@HOST:PORT/DB URL")->required();
  c->add_option("--model,-m", o->model, "query model (default: the rolling-out model, else the deployed one)");
  c->add_option("--features", o->features, "query embeddings: a feature directory (features.npy; paths.txt names the queries)");
  add_data_options(*c, o->data);
  c->add_option("--list", o->list, "query images: one path per line (embedded by the query model)");
  c->add_option("-k,--k", o->k, "results per query")->check(CLI::PositiveNumber);
  c->add_option("--merge", o->merge, "raw | calibrated | rank | aligned (default: calibrated when fitted, else raw)")
      ->check(CLI::IsMember({"raw", "calibrated", "rank", "aligned"}));
  c->add_option("--index", o->index, "flat (exact) | ivf | hnsw (approximate)")->check(CLI::IsMember({"flat", "ivf", "hnsw"}));
  c->add_option("--nlist", o->ann.nlist, "ivf: lists (0 = 4·sqrt(n))");
  c->add_option("--nprobe", o->ann.nprobe, "ivf: lists visited per query");
  c->add_option("--hnsw-m", o->ann.hnsw_m, "hnsw: links per node");
  c->add_option("--ef-search", o->ann.ef_search, "hnsw: candidate list size");
  c->add_flag("--recall", o->recall, "approximate index: also search exactly and report recall@k against it");
  c->add_option("--out", o->out, "write every result as TSV: query, rank, item key, score, merge key, version");
  c->add_option("--show", o->show, "print the results of the first N queries")->check(CLI::NonNegativeNumber);
  c->add_option("--threads", o->threads, "threads (0 = all cores)");
  c->callback([o] { run_search(*o); });
}

}  // namespace dualtune::cli

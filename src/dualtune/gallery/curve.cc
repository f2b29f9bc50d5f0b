#include "dualtune/gallery/curve.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "dualtune/eval/metrics.h"
#include "dualtune/eval/mixed_gallery.h"
#include "dualtune/eval/ranking.h"
#include "dualtune/eval/similarity.h"
#include "dualtune/util/error.h"

namespace dualtune::gallery {

double curve_area(const std::vector<double>& f, const std::vector<double>& v) {
  DT_CHECK(f.size() == v.size(), "curve area: expected one value per fraction");
  if (f.size() < 2 || f.back() <= f.front()) return f.empty() ? 0.0 : v.front();
  double a = 0;
  for (size_t i = 1; i < f.size(); ++i) a += (f[i] - f[i - 1]) * (v[i] + v[i - 1]) / 2;
  return a / (f.back() - f.front());
}

std::vector<double> parse_curve_fractions(const std::string& text) {
  std::vector<double> out;
  if (text.rfind("steps:", 0) == 0) {
    int steps = 0;
    try {
      steps = std::stoi(text.substr(6));
    } catch (...) {
    }
    DT_CHECK(steps >= 1 && steps <= 1000, "curve fractions: expected steps:N with 1 <= N <= 1000, found '", text, "'");
    for (int i = 0; i <= steps; ++i) out.push_back(double(i) / steps);
    return out;
  }
  out = eval::parse_fractions(text);
  for (size_t i = 1; i < out.size(); ++i)
    DT_CHECK(out[i] > out[i - 1], "curve fractions: expected ascending fractions, found ", out[i - 1], " then ", out[i]);
  return out;
}

namespace {

void check(const CurveData& d, const std::vector<CurveSpec>& specs, const std::vector<double>& fractions) {
  DT_CHECK(d.n > 0 && d.d_old > 0 && d.d_new > 0, "backfill curve: expected a non-empty gallery with positive dimensions");
  DT_CHECK(static_cast<int64_t>(d.old_vectors.size()) == d.n * d.d_old &&
               static_cast<int64_t>(d.new_vectors.size()) == d.n * d.d_new &&
               static_cast<int64_t>(d.labels.size()) == d.n,
           "backfill curve: expected ", d.n, " old vectors, new vectors and labels");
  DT_CHECK(d.cams.empty() || static_cast<int64_t>(d.cams.size()) == d.n, "backfill curve: expected ", d.n, " cams");
  DT_CHECK(static_cast<int64_t>(d.queries.size()) == d.nq * d.d_new &&
               static_cast<int64_t>(d.query_labels.size()) == d.nq &&
               static_cast<int64_t>(d.query_self.size()) == d.nq,
           "backfill curve: expected ", d.nq, " queries of dimension ", d.d_new, " with labels and self indices");
  DT_CHECK(d.query_cams.empty() || static_cast<int64_t>(d.query_cams.size()) == d.nq,
           "backfill curve: expected ", d.nq, " query cams");
  DT_CHECK(!fractions.empty(), "backfill curve: expected at least one fraction");
  for (const auto& s : specs) {
    DT_CHECK(static_cast<int64_t>(s.order.size()) == d.n, "backfill curve: order '", s.order_name, "' lists ",
             s.order.size(), " items, expected ", d.n);
    std::vector<uint8_t> seen(static_cast<size_t>(d.n), 0);
    for (int64_t j : s.order) {
      DT_CHECK(j >= 0 && j < d.n && !seen[j], "backfill curve: order '", s.order_name,
               "' is not a permutation of the gallery (bad or repeated index ", j, ")");
      seen[j] = 1;
    }
  }
}

// Gallery indices by score, best first, ties by index ascending (eval's ranked order):
// a stable LSD radix sort, 3 passes of 11 bits, on the score's order-preserving bits
// above the index. `work` and `tmp` are scratch; the order is written to `out`.
void order_best_first(int64_t n, const float* s, std::vector<uint64_t>& work, std::vector<uint64_t>& tmp,
                      std::vector<int64_t>& out) {
  DT_CHECK(n <= int64_t(0xFFFFFFFF), "backfill curve: the rank merge orders at most 2^32 − 1 items, found ", n);
  work.resize(static_cast<size_t>(n));
  tmp.resize(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) {
    const float v = s[j] == 0.0f ? 0.0f : s[j];  // −0 ties +0, as in the comparison
    uint32_t u;
    std::memcpy(&u, &v, sizeof u);
    u ^= (u >> 31) ? 0xFFFFFFFFu : 0x80000000u;  // ascending in the score
    work[j] = (uint64_t(~u) << 32) | uint64_t(j);  // descending score, then index
  }
  uint64_t* a = work.data();
  uint64_t* b = tmp.data();
  for (int shift = 32; shift < 64; shift += 11) {
    uint32_t count[2049] = {0};
    for (int64_t j = 0; j < n; ++j) ++count[((a[j] >> shift) & 2047u) + 1];
    for (int k = 0; k < 2048; ++k) count[k + 1] += count[k];
    for (int64_t j = 0; j < n; ++j) b[count[(a[j] >> shift) & 2047u]++] = a[j];
    std::swap(a, b);
  }
  out.resize(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) out[j] = static_cast<int64_t>(a[j] & 0xFFFFFFFFu);
}

}  // namespace

std::vector<Curve> backfill_curves(const CurveData& data, const std::vector<CurveSpec>& specs,
                                   const std::vector<double>& fractions, int threads, int64_t max_block_bytes) {
  check(data, specs, fractions);
  eval::set_num_threads(threads);
  const int64_t n = data.n, nq = data.nq, d_mix = std::min(data.d_old, data.d_new);
  const auto gn = eval::normalized_prefix(n, data.d_new, data.new_vectors.data(), data.d_new);
  const auto go = eval::normalized_prefix(n, data.d_old, data.old_vectors.data(), d_mix);
  const auto qn = eval::normalized_prefix(nq, data.d_new, data.queries.data(), data.d_new);
  const auto qo = eval::normalized_prefix(nq, data.d_new, data.queries.data(), d_mix);
  const size_t ns = specs.size(), nf = fractions.size();
  std::vector<int64_t> counts(nf);
  for (size_t f = 0; f < nf; ++f) counts[f] = eval::old_item_count(n, fractions[f]);
  // pos[s][j]: position of gallery item j in spec s's order; j is new at point f iff pos < counts[f].
  std::vector<std::vector<int64_t>> pos(ns, std::vector<int64_t>(static_cast<size_t>(n)));
  for (size_t s = 0; s < ns; ++s)
    for (int64_t p = 0; p < n; ++p) pos[s][static_cast<size_t>(specs[s].order[p])] = p;
  // results[s][f]: per-query AP and first rank.
  std::vector<std::vector<eval::QueryResults>> results(ns, std::vector<eval::QueryResults>(nf, eval::QueryResults(nq)));

  // Each block holds two similarity matrices (new/new and new→old).
  const int64_t block = eval::query_block_rows(n, max_block_bytes / 2);
  std::vector<float> S_old(static_cast<size_t>(std::min(block, nq) * n));
  const bool any_rank = std::any_of(specs.begin(), specs.end(), [](const CurveSpec& s) { return s.merge == Merge::kRank; });
  eval::for_each_similarity_block(nq, qn.data(), n, gn.data(), data.d_new, max_block_bytes / 2,
                                  [&](int64_t q0, int64_t rows, const float* S_new) {
    // new→old scores of the same block of queries.
    eval::similarity_rows(rows, qo.data() + q0 * d_mix, n, go.data(), d_mix, S_old.data());
#pragma omp parallel
    {
      std::vector<eval::Role> roles(static_cast<size_t>(n));
      std::vector<float> key(static_cast<size_t>(n)), key_new(static_cast<size_t>(n)), key_old(static_cast<size_t>(n));
      std::vector<int64_t> by_new, by_old;
      std::vector<uint64_t> sort_work, sort_tmp;
      eval::RankScratch scratch;
      std::vector<int64_t> ranks;
#pragma omp for schedule(dynamic, 4)
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t i = q0 + r;
        const int64_t ql = data.query_labels[i];
        if (ql < 0) continue;
        const int64_t qc = data.query_cams.empty() ? -1 : data.query_cams[i];
        bool any_positive = false;
        for (int64_t j = 0; j < n; ++j) {
          const int64_t gl = data.labels[j];
          eval::Role role = eval::Role::kNegative;
          if (gl < 0 || j == data.query_self[i]) role = eval::Role::kExcluded;
          else if (gl == ql) role = (qc >= 0 && !data.cams.empty() && data.cams[j] == qc) ? eval::Role::kExcluded : eval::Role::kPositive;
          roles[j] = role;
          any_positive |= role == eval::Role::kPositive;
        }
        if (!any_positive) continue;
        const float* sn = S_new + r * n;
        const float* so = S_old.data() + r * n;
        if (any_rank) {
          // Items by score within each version, best first (ties: index ascending).
          order_best_first(n, sn, sort_work, sort_tmp, by_new);
          order_best_first(n, so, sort_work, sort_tmp, by_old);
        }
        for (size_t s = 0; s < ns; ++s) {
          const CurveSpec& spec = specs[s];
          const int64_t* p = pos[s].data();
          // Raw and calibrated keys are each item's own version's score (calibrated: its
          // logit, computed once per query), so a state's keys are the previous state's
          // with the items backfilled in between switched to new: the plan's positions
          // [previous count, count). A count below the previous one starts over.
          const bool per_item = spec.merge == Merge::kRaw || spec.merge == Merge::kCalibrated;
          const float* kn = sn;
          const float* ko = so;
          if (spec.merge == Merge::kCalibrated) {
            for (int64_t j = 0; j < n; ++j) {
              key_new[j] = static_cast<float>(spec.cal_new.key(sn[j]));
              key_old[j] = static_cast<float>(spec.cal_old.key(so[j]));
            }
            kn = key_new.data(), ko = key_old.data();
          }
          int64_t keys_at = -1;  // per_item: the keys hold the state with this many new items
          for (size_t f = 0; f < nf; ++f) {
            const int64_t c = counts[f];
            if (per_item) {
              if (keys_at < 0 || c < keys_at) {
                for (int64_t j = 0; j < n; ++j) key[j] = p[j] < c ? kn[j] : ko[j];
              } else {
                for (int64_t q = keys_at; q < c; ++q) key[spec.order[q]] = kn[spec.order[q]];
              }
              keys_at = c;
            } else if (spec.merge == Merge::kRank) {
              // key = 1 − (r − ½)/n_v within each version; ranks by walking the sorted lists.
              const double n_new = double(c), n_old = double(n - c);
              int64_t rn = 0, ro = 0;
              for (int64_t j : by_new)
                if (p[j] < c) key[j] = static_cast<float>(1.0 - (double(++rn) - 0.5) / n_new);
              for (int64_t j : by_old)
                if (p[j] >= c) key[j] = static_cast<float>(1.0 - (double(++ro) - 0.5) / n_old);
            } else if (spec.merge == Merge::kAligned) {
              // Mean and deviation of both versions' scores over the backfilled items.
              double n1 = 0, n2 = 0, o1 = 0, o2 = 0, m = 0;
              for (int64_t j = 0; j < n; ++j) {
                if (p[j] >= c) continue;
                n1 += sn[j], n2 += double(sn[j]) * sn[j], o1 += so[j], o2 += double(so[j]) * so[j], m += 1;
              }
              double a = 1, b = 0;
              if (m >= 2) {
                const double mn = n1 / m, mo = o1 / m;
                const double sdn = std::sqrt(std::max(0.0, n2 / m - mn * mn)), sdo = std::sqrt(std::max(0.0, o2 / m - mo * mo));
                if (sdn > 0) a = sdo / sdn, b = mo - a * mn;
              }
              for (int64_t j = 0; j < n; ++j) key[j] = static_cast<float>(p[j] < c ? a * sn[j] + b : so[j]);
            }
            eval::positive_ranks(n, key.data(), roles.data(), scratch, ranks);
            if (ranks.empty()) continue;
            auto& res = results[s][f];
            res.first_rank[i] = ranks.front();
            res.ap[i] = eval::average_precision(ranks);
            res.inp[i] = eval::inverse_negative_penalty(ranks);
          }
        }
      }
    }
  });

  std::vector<Curve> curves;
  for (size_t s = 0; s < ns; ++s) {
    Curve c;
    c.order = specs[s].order_name;
    c.merge = merge_name(specs[s].merge);
    std::vector<double> maps, top1s;
    for (size_t f = 0; f < nf; ++f) {
      const eval::Metrics m = eval::reduce_query_results(results[s][f]);
      CurvePoint pt;
      pt.fraction = fractions[f];
      pt.backfilled = counts[f];
      pt.map = m.map;
      pt.top1 = m.rank1;
      pt.queries = m.queries;
      c.points.push_back(pt);
      maps.push_back(m.map);
      top1s.push_back(m.rank1);
    }
    c.area_map = curve_area(fractions, maps);
    c.area_top1 = curve_area(fractions, top1s);
    c.worst_map_drop = 0;
    for (double m : maps) c.worst_map_drop = std::min(c.worst_map_drop, m - maps.front());
    curves.push_back(std::move(c));
  }
  return curves;
}

}  // namespace dualtune::gallery

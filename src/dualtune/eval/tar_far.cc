#include "dualtune/eval/tar_far.h"

#include <algorithm>
#include <cmath>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "dualtune/util/error.h"

namespace dualtune::eval {
namespace {

/// Bit i set iff p[i] >= floor, for the 8 scores at p (NaN never is).
inline unsigned at_least_mask(const float* p, float floor) {
#if defined(__SSE2__)
  const __m128 f = _mm_set1_ps(floor);
  return static_cast<unsigned>(_mm_movemask_ps(_mm_cmpge_ps(_mm_loadu_ps(p), f)) |
                               (_mm_movemask_ps(_mm_cmpge_ps(_mm_loadu_ps(p + 4), f)) << 4));
#else
  unsigned mask = 0;
  for (int i = 0; i < 8; ++i) mask |= unsigned(p[i] >= floor) << i;
  return mask;
#endif
}

}  // namespace

int64_t far_threshold_rank(double far, int64_t num_impostors) {
  DT_CHECK(far >= 0 && far < 1, "TAR@FAR: expected a FAR target in [0, 1), found ", far);
  return static_cast<int64_t>(std::floor(far * double(num_impostors))) + 1;
}

float key_score(uint32_t key) {
  const uint32_t u = (key & 0x80000000u) ? (key & 0x7FFFFFFFu) : ~key;
  float s;
  __builtin_memcpy(&s, &u, sizeof s);
  return s;
}

TarFarCounter::TarFarCounter(const TarFarWindows& windows) : windows_(windows) {
  if (windows.survey()) {
    for (auto& c : coarse_) c.assign(kCoarseBins, 0);
  }
  for (int t = 0; t < 3; ++t) {
    // At most 2^15 bins (a 32 GiB window would be a bug): lo + width stays below 2^32.
    const uint32_t first = std::min(windows.first[t], kCoarseBins - 1);
    const uint32_t count = std::min({windows.count[t], kCoarseBins - first, kCoarseBins / 2});
    lo_[t] = first << 16;
    width_[t] = count << 16;
    fine_[t] = KeyCounts(width_[t]);
    windows_.first[t] = first;
    windows_.count[t] = count;
  }
}

void KeyCounts::merge(const KeyCounts& other) {
  DT_CHECK(other.pages_.size() == pages_.size(), "TAR@FAR: internal error: merging windows of different widths");
  for (size_t p = 0; p < pages_.size(); ++p) {
    if (!other.pages_[p]) continue;
    if (!pages_[p]) pages_[p].reset(new uint64_t[2 * kPageKeys]());
    for (uint32_t i = 0; i < 2 * kPageKeys; ++i) pages_[p][i] += other.pages_[p][i];
  }
}

void TarFarCounter::add(float s, bool genuine) {
  const uint32_t key = score_key(s);
  ++num_[genuine];
  if (windows_.survey()) {
    ++coarse_[genuine][key >> 16];
    return;
  }
  for (int t = 0; t < 3; ++t) {
    if (width_[t] == 0) continue;
    const uint32_t off = key - lo_[t];
    if (off < width_[t]) {
      fine_[t].add(off, genuine);
    } else if (key >= lo_[t]) {
      ++above_[t][genuine];
    }
  }
}

void TarFarCounter::add_row(int64_t ng, const float* scores, const Role* roles) {
  if (windows_.survey()) {
    for (int64_t j = 0; j < ng; ++j)
      if (roles[j] != Role::kExcluded) add(scores[j], roles[j] == Role::kPositive);
    return;
  }
  // Most pairs score below the lowest window (at least 99% of the impostors, the lowest
  // window being FAR 1e-2's). The pairs are counted from the roles alone, and the scores
  // are scanned eight at a time for one at or above the lowest window: only such a group
  // goes the slow way. key >= lowest <=> s >= key_score(lowest) for non-NaN s; NaN has
  // key 0, below every window but one starting at 0.
  uint32_t lowest = 0xFFFFFFFFu;
  for (int t = 0; t < 3; ++t)
    if (width_[t] > 0) lowest = std::min(lowest, lo_[t]);
  int64_t n_excluded = 0, n_gen = 0;
  for (int64_t j = 0; j < ng; ++j) {
    n_excluded += roles[j] == Role::kExcluded;
    n_gen += roles[j] == Role::kPositive;
  }
  num_[0] += ng - n_excluded - n_gen;
  num_[1] += n_gen;
  if (lowest == 0xFFFFFFFFu) return;
  // Keys below -FLT_MAX's are NaN bit patterns: from there on every score is checked;
  // a window from key 0 also holds NaN scores (key 0), which no comparison finds.
  const float floor_score = std::isnan(key_score(lowest)) ? -INFINITY : key_score(lowest);
  const bool every_score = lowest == 0;
  // Pairs above every window (most genuine pairs: they score above FAR 1e-4's
  // threshold) count in every window's "above" at once: key >= highest <=> s >=
  // key_score(highest), highest the windows' largest end. No score reaches an end past
  // +inf's key (key_score is NaN there, which no comparison passes).
  uint64_t highest = 0;
  for (int t = 0; t < 3; ++t)
    if (width_[t] > 0) highest = std::max<uint64_t>(highest, uint64_t(lo_[t]) + width_[t]);
  const float top_score = highest > 0xFFFFFFFFu ? NAN : key_score(static_cast<uint32_t>(highest));
  uint64_t above_all[2] = {0, 0};
  auto slow = [&](int64_t j) {
    const Role r = roles[j];
    if (r == Role::kExcluded) return;
    const uint32_t key = score_key(scores[j]);
    if (key < lowest) return;
    const bool g = r == Role::kPositive;
    for (int t = 0; t < 3; ++t) {
      if (width_[t] == 0) continue;
      const uint32_t off = key - lo_[t];
      if (off < width_[t]) {
        fine_[t].add(off, g);
      } else if (key >= lo_[t]) {
        ++above_[t][g];
      }
    }
  };
  constexpr int64_t kGroup = 8;
  int64_t j = 0;
  for (; j + kGroup <= ng; j += kGroup) {
    const unsigned reach = every_score ? 0xFFu : at_least_mask(scores + j, floor_score);
    if (reach == 0) continue;
    const unsigned above = at_least_mask(scores + j, top_score);
    for (unsigned m = reach & ~above; m; m &= m - 1) slow(j + __builtin_ctz(m));
    for (unsigned m = above; m; m &= m - 1) {
      const Role r = roles[j + __builtin_ctz(m)];
      above_all[r == Role::kPositive] += r != Role::kExcluded;
    }
  }
  for (; j < ng; ++j) slow(j);
  for (int t = 0; t < 3; ++t)
    if (width_[t] > 0) above_[t][0] += above_all[0], above_[t][1] += above_all[1];
}

void TarFarCounter::merge(const TarFarCounter& other) {
  for (int t = 0; t < 3; ++t)
    DT_CHECK(other.windows_.first[t] == windows_.first[t] && other.windows_.count[t] == windows_.count[t],
             "TAR@FAR: internal error: merging counters with different windows");
  for (int g = 0; g < 2; ++g) {
    for (size_t i = 0; i < coarse_[g].size(); ++i) coarse_[g][i] += other.coarse_[g][i];
    num_[g] += other.num_[g];
  }
  for (int t = 0; t < 3; ++t) {
    fine_[t].merge(other.fine_[t]);
    above_[t][0] += other.above_[t][0];
    above_[t][1] += other.above_[t][1];
  }
}

TarFarResult TarFarCounter::resolve() const {
  TarFarResult r{};
  for (int f = 0; f < 3; ++f) {
    r.tar[f] = r.threshold[f] = std::nan("");
    r.resolved[f] = true;
    r.bin_known[f] = false;
    r.bin[f] = 0;
    if (num_[0] == 0) continue;
    const auto k = static_cast<uint64_t>(far_threshold_rank(kFarTargets[f], num_[0]));  // 1 <= k <= N
    r.resolved[f] = false;
    if (windows_.survey()) {
      // The coarse bin holding the k-th largest impostor.
      uint64_t above = 0;
      uint32_t bin = kCoarseBins - 1;
      for (; bin > 0 && above + coarse_[0][bin] < k; --bin) above += coarse_[0][bin];
      r.bin_known[f] = true;
      r.bin[f] = bin;
      continue;
    }
    for (int t = 0; t < 3 && !r.resolved[f]; ++t) {
      if (width_[t] == 0 || above_[t][0] >= k) continue;  // t is above this window
      // Key by key from the top of the window: t is the key where the count reaches k.
      uint64_t imp = above_[t][0], gen = above_[t][1];
      const KeyCounts& fine = fine_[t];
      for (int64_t page = fine.num_pages() - 1; page >= 0 && !r.resolved[f]; --page) {
        if (!fine.page_used(static_cast<uint32_t>(page))) continue;
        for (int64_t i = KeyCounts::kPageKeys - 1; i >= 0; --i) {
          const auto off = static_cast<uint32_t>(page * KeyCounts::kPageKeys + i);
          if (imp + fine.get(off, false) >= k) {
            r.threshold[f] = key_score(lo_[t] + off);
            r.resolved[f] = true;
            if (num_[1] > 0) r.tar[f] = double(gen) / double(num_[1]);
            break;
          }
          imp += fine.get(off, false);
          gen += fine.get(off, true);
        }
      }
      // Not reached: t is below this window.
    }
  }
  return r;
}

TarFarWindows TarFarCounter::predict_windows(uint32_t bins) const {
  DT_CHECK(windows_.survey(), "TAR@FAR: internal error: predict_windows needs a survey");
  bins = std::clamp<uint32_t>(bins, 1, kCoarseBins / 2);
  const TarFarResult r = resolve();
  TarFarWindows w;
  for (int f = 0; f < 3; ++f) {
    const uint32_t centre = r.bin_known[f] ? r.bin[f] : kCoarseBins - 1;
    const uint32_t first = centre >= bins / 2 ? centre - bins / 2 : 0;
    w.first[f] = std::min(first, kCoarseBins - bins);
    w.count[f] = bins;
  }
  return w;
}

TarFarWindows predict_windows(const std::vector<TarFarCounter>& parts, uint32_t min_bins, uint32_t max_bins) {
  DT_CHECK(!parts.empty(), "TAR@FAR: internal error: predict_windows needs at least one part");
  max_bins = std::clamp<uint32_t>(max_bins, 1, kCoarseBins / 2);
  min_bins = std::clamp<uint32_t>(min_bins, 1, max_bins);
  TarFarCounter whole;
  for (const auto& p : parts) whole.merge(p);
  TarFarWindows w = whole.predict_windows(min_bins);
  const TarFarResult all = whole.resolve();
  std::vector<TarFarResult> each;
  for (const auto& p : parts) each.push_back(p.resolve());
  for (int f = 0; f < 3; ++f) {
    if (!all.bin_known[f]) continue;  // no impostor in the sample: the default window
    uint32_t lo = all.bin[f], hi = all.bin[f];
    for (const auto& r : each)
      if (r.bin_known[f]) lo = std::min(lo, r.bin[f]), hi = std::max(hi, r.bin[f]);
    lo = lo > 0 ? lo - 1 : 0;
    hi = std::min(hi + 1, kCoarseBins - 1);
    if (hi - lo + 1 <= min_bins) {
      // min_bins centred on the range (on the sample's bin when the parts agree), moved
      // to hold all of it.
      const uint32_t mid = lo + (hi - lo + 1) / 2;
      uint32_t first = mid >= min_bins / 2 ? mid - min_bins / 2 : 0;
      first = std::min(first, lo);
      if (first + min_bins - 1 < hi) first = hi - min_bins + 1;
      w.first[f] = std::min(first, kCoarseBins - min_bins);
      w.count[f] = min_bins;
      continue;
    }
    const uint32_t count = std::min(hi - lo + 1, max_bins);
    // Too wide: max_bins from lo, moved up until it holds the sample's bin.
    uint32_t first = lo;
    if (all.bin[f] >= first + count) first = all.bin[f] - count + 1;
    w.first[f] = std::min(first, kCoarseBins - count);
    w.count[f] = count;
  }
  return w;
}

TarFarResult resolve_tar_far(const TarFarCounter& first,
                             const std::function<TarFarCounter(const TarFarWindows&)>& pass, int* passes) {
  TarFarResult r = first.resolve();
  int extra = 0;
  auto unresolved = [&] { return !(r.resolved[0] && r.resolved[1] && r.resolved[2]); };
  if (unresolved()) {
    TarFarResult bins = r;
    if (!(r.bin_known[0] || r.bin_known[1] || r.bin_known[2])) {
      bins = pass(TarFarWindows{}).resolve();  // survey: which bin holds each threshold
      ++extra;
    }
    TarFarWindows on_bins;
    for (int f = 0; f < 3; ++f) {
      if (r.resolved[f]) continue;
      DT_CHECK(bins.bin_known[f], "TAR@FAR: internal error: no bin for FAR ", kFarTargets[f]);
      on_bins.first[f] = bins.bin[f];
      on_bins.count[f] = 1;
    }
    const TarFarResult exact = pass(on_bins).resolve();
    ++extra;
    for (int f = 0; f < 3; ++f) {
      if (r.resolved[f]) continue;
      DT_CHECK(exact.resolved[f], "TAR@FAR: internal error: the pass over its bin did not resolve FAR ",
               kFarTargets[f], " (were the pairs the same in every pass?)");
      r.tar[f] = exact.tar[f];
      r.threshold[f] = exact.threshold[f];
      r.resolved[f] = true;
    }
  }
  if (passes) *passes = extra;
  return r;
}

}  // namespace dualtune::eval

#include "dualtune/gallery/merge.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "dualtune/eval/similarity.h"
#include "dualtune/util/error.h"

namespace dualtune::gallery {
namespace {
constexpr int kBins = 8192;  // over [-1, 1]: width 1/4096
}

Merge parse_merge(const std::string& name) {
  if (name == "raw") return Merge::kRaw;
  if (name == "calibrated") return Merge::kCalibrated;
  if (name == "rank") return Merge::kRank;
  if (name == "aligned") return Merge::kAligned;
  DT_THROW("expected a merge raw, calibrated, rank or aligned, found '", name, "'");
}

const char* merge_name(Merge m) {
  switch (m) {
    case Merge::kRaw: return "raw";
    case Merge::kCalibrated: return "calibrated";
    case Merge::kRank: return "rank";
    case Merge::kAligned: return "aligned";
  }
  return "?";
}

Merge default_merge() { return Merge::kCalibrated; }

std::string Calibration::to_json() const {
  return nlohmann::json{{"a", a}, {"b", b}, {"genuine", genuine}, {"impostor", impostor}}.dump();
}

Calibration Calibration::from_json(const std::string& text) {
  Calibration c;
  try {
    const auto j = nlohmann::json::parse(text);
    c.a = j.at("a").get<double>();
    c.b = j.at("b").get<double>();
    c.genuine = j.at("genuine").get<int64_t>();
    c.impostor = j.at("impostor").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    DT_THROW("gallery: a stored score calibration is not the expected JSON {a, b, genuine, impostor}: ", e.what());
  }
  DT_CHECK(c.a > 0 && std::isfinite(c.b), "gallery: a stored score calibration has a = ", c.a, ", b = ", c.b,
           ", expected a > 0 and a finite b");
  return c;
}

Calibration fit_calibration_binned(const std::vector<double>& gen, const std::vector<double>& imp) {
  DT_CHECK(gen.size() == imp.size() && !gen.empty(), "calibration: expected genuine and impostor histograms of one size");
  const size_t nb = gen.size();
  double tg = 0, ti = 0;
  for (size_t i = 0; i < nb; ++i) tg += gen[i], ti += imp[i];
  DT_CHECK(tg > 0 && ti > 0, "calibration: expected genuine and impostor pairs, found ", tg, " genuine and ", ti,
           " impostor (does the calibration set have several items per class and several classes?)");
  // Equal total weight per class of pair; bin centres on [-1, 1]; a tiny ridge keeps the
  // optimum finite when the two classes are separable.
  const double wg = 0.5 / tg, wi = 0.5 / ti, ridge = 1e-6;
  auto centre = [nb](size_t i) { return -1.0 + (double(i) + 0.5) * 2.0 / double(nb); };
  auto loss = [&](double a, double b) {
    double l = ridge * (a * a + b * b) / 2;
    for (size_t i = 0; i < nb; ++i) {
      if (gen[i] == 0 && imp[i] == 0) continue;
      const double z = a * centre(i) + b;
      // -log σ(z) = log(1 + e^{-z}), -log(1 - σ(z)) = log(1 + e^{z}), computed stably
      const double lp = z > 0 ? std::log1p(std::exp(-z)) : -z + std::log1p(std::exp(z));
      l += gen[i] * wg * lp + imp[i] * wi * (lp + z);
    }
    return l;
  };
  double a = 1, b = 0, cur = loss(a, b);
  for (int it = 0; it < 200; ++it) {
    double g0 = ridge * a, g1 = ridge * b, h00 = ridge, h01 = 0, h11 = ridge;
    for (size_t i = 0; i < nb; ++i) {
      const double w1 = gen[i] * wg, w0 = imp[i] * wi;
      if (w1 == 0 && w0 == 0) continue;
      const double s = centre(i);
      const double p = 1.0 / (1.0 + std::exp(-(a * s + b)));
      const double r = w1 * (p - 1.0) + w0 * p;  // d(loss)/d(logit)
      const double h = (w1 + w0) * p * (1.0 - p);
      g0 += r * s, g1 += r;
      h00 += h * s * s, h01 += h * s, h11 += h;
    }
    const double det = h00 * h11 - h01 * h01;
    const double da = (h11 * g0 - h01 * g1) / det, db = (h00 * g1 - h01 * g0) / det;
    // Newton step, halved until the loss does not increase.
    double t = 1, next = loss(a - da, b - db);
    while (next > cur && t > 1e-8) {
      t /= 2;
      next = loss(a - t * da, b - t * db);
    }
    a -= t * da, b -= t * db;
    const bool converged = std::fabs(t * da) < 1e-12 && std::fabs(t * db) < 1e-12;
    cur = next;
    if (converged) break;
  }
  DT_CHECK(std::isfinite(a) && std::isfinite(b) && a > 0, "calibration: the fitted logit ", a, "·s + ", b,
           " is not increasing in the score: genuine pairs do not score higher than impostors");
  Calibration c;
  c.a = a;
  c.b = b;
  c.genuine = static_cast<int64_t>(tg);
  c.impostor = static_cast<int64_t>(ti);
  return c;
}

namespace {
int bin_of(float s) {
  const int b = static_cast<int>((static_cast<double>(s) + 1.0) * 0.5 * kBins);
  return std::clamp(b, 0, kBins - 1);
}
}  // namespace

Calibration fit_calibration(int64_t n, const float* scores, const uint8_t* genuine) {
  std::vector<double> gen(kBins, 0), imp(kBins, 0);
  for (int64_t i = 0; i < n; ++i) (genuine[i] ? gen : imp)[static_cast<size_t>(bin_of(scores[i]))] += 1;
  return fit_calibration_binned(gen, imp);
}

Calibration fit_calibration_pairs(int64_t n, int64_t dq, const float* q, int64_t dg, const float* g,
                                  const int64_t* labels) {
  const int64_t d = std::min(dq, dg);
  const auto qn = eval::normalized_prefix(n, dq, q, d);
  const auto gn = eval::normalized_prefix(n, dg, g, d);
  std::vector<double> gen(kBins, 0), imp(kBins, 0);
  eval::for_each_similarity_block(n, qn.data(), n, gn.data(), d, int64_t(32) << 20,
                                  [&](int64_t q0, int64_t rows, const float* S) {
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i = q0 + r;
      if (labels[i] < 0) continue;
      for (int64_t j = 0; j < n; ++j) {
        if (j == i || labels[j] < 0) continue;
        (labels[j] == labels[i] ? gen : imp)[static_cast<size_t>(bin_of(S[r * n + j]))] += 1;
      }
    }
  });
  return fit_calibration_binned(gen, imp);
}

}  // namespace dualtune::gallery

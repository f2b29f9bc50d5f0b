#include "dualtune/models/fused_ops.h"

#include "dualtune/util/error.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>

namespace dualtune::models {
namespace {

std::atomic<bool> g_fused{true};

// Element types as raw bits: bf16 is handled as its uint16 pattern (the value is the
// float whose upper half it is), float32 as itself.
inline float value(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline float value(float f) { return f; }

// 0 + g as libtorch's scatter-add into a zeroed gradient computes it: −0 → +0, the rest
// unchanged (exact: a bf16 plus zero needs no rounding).
inline uint16_t plus_zero(uint16_t g) { return g == 0x8000 ? uint16_t{0} : g; }
inline float plus_zero(float g) { return 0.0f + g; }

constexpr uint8_t kNoGrad = 4;  // relu's output ≤ 0: no gradient reaches the window

// One window (a, b in the upper row, c, d in the lower, scan order): relu of its first
// maximum into *o, the maximum's position (or kNoGrad) into *k.
template <class T>
__attribute__((always_inline)) inline void window(T va, T vb, T vc, T vd, T* o, uint8_t* k) {
  // From max = −inf the first element is always taken (a > −inf, or NaN, or
  // a == −inf == max): start from it.
  T mb = va;
  float mv = value(mb);
  uint8_t pos = 0;
  const float fb = value(vb), fc = value(vc), fd = value(vd);
  bool t = fb > mv || fb != fb;
  mb = t ? vb : mb;
  mv = t ? fb : mv;
  pos = t ? uint8_t{1} : pos;
  t = fc > mv || fc != fc;
  mb = t ? vc : mb;
  mv = t ? fc : mv;
  pos = t ? uint8_t{2} : pos;
  t = fd > mv || fd != fd;
  mb = t ? vd : mb;
  mv = t ? fd : mv;
  pos = t ? uint8_t{3} : pos;
  *o = mv < 0.0f ? T(0) : mb;       // relu: max(v, 0) keeps −0 and NaN
  *k = mv <= 0.0f ? kNoGrad : pos;  // threshold_backward: zero where relu(v) ≤ 0
}

// One output row, channels-last (NHWC): input rows r0 = 2·oh and r1 = 2·oh + 1, c_n
// channels per pixel, the loop vectorised over channels.
template <class T>
__attribute__((always_inline)) inline void forward_row(const T* r0, const T* r1, int64_t ow_n, int64_t c_n, T* out,
                                                       uint8_t* code) {
  for (int64_t ow = 0; ow < ow_n; ++ow) {
    const T* a = r0 + 2 * ow * c_n;
    const T* b = a + c_n;
    const T* c = r1 + 2 * ow * c_n;
    const T* d = c + c_n;
    T* o = out + ow * c_n;
    uint8_t* k = code + ow * c_n;
#pragma GCC ivdep  // the input, output and byte rows never overlap
    for (int64_t ch = 0; ch < c_n; ++ch) window(a[ch], b[ch], c[ch], d[ch], o + ch, k + ch);
  }
}

template <class T>
__attribute__((always_inline)) inline void backward_row(const T* g, const uint8_t* code, int64_t ow_n, int64_t c_n,
                                                        T* r0, T* r1) {
  for (int64_t ow = 0; ow < ow_n; ++ow) {
    T* a = r0 + 2 * ow * c_n;
    T* b = a + c_n;
    T* c = r1 + 2 * ow * c_n;
    T* d = c + c_n;
    const T* gr = g + ow * c_n;
    const uint8_t* k = code + ow * c_n;
#pragma GCC ivdep  // the input, output and byte rows never overlap
    for (int64_t ch = 0; ch < c_n; ++ch) {
      const T v = plus_zero(gr[ch]);
      const uint8_t p = k[ch];
      a[ch] = p == 0 ? v : T(0);
      b[ch] = p == 1 ? v : T(0);
      c[ch] = p == 2 ? v : T(0);
      d[ch] = p == 3 ? v : T(0);
    }
  }
}

// Planar (NCHW): the windows of output rows [r_begin, r_end) of planes of h × w, in flat
// order (row r's window o is r·ow + o, where the output and the code bytes keep it). A
// window's two elements in a row are adjacent, so a loop over windows reads with stride
// 2 and, at 14 windows a row (convnet block 1), does not vectorise: compiled as it is, it
// branches on every comparison. So windows are copied into four contiguous arrays of up
// to kChunk, across rows, and run through the channels-last loop's window() there; the
// backward computes the four arrays the same way and copies them out.
constexpr int64_t kChunk = 256;

// n windows of four contiguous arrays (inlined into each ISA's kernel, so it vectorises
// for that ISA).
template <class T>
__attribute__((always_inline)) inline void windows(const T* a, const T* b, const T* c, const T* d, int64_t n, T* y,
                                                   uint8_t* code) {
#pragma GCC ivdep  // the arrays, the output and the byte rows never overlap
  for (int64_t j = 0; j < n; ++j) window(a[j], b[j], c[j], d[j], y + j, code + j);
}

template <class T>
__attribute__((always_inline)) inline void forward_planar(const T* x, int64_t h, int64_t w, int64_t r_begin,
                                                          int64_t r_end, T* y, uint8_t* code) {
  const int64_t oh = h / 2, ow = w / 2;
  T a[kChunk], b[kChunk], c[kChunk], d[kChunk];
  int64_t n = 0, start = r_begin * ow;
  for (int64_t r = r_begin; r < r_end; ++r) {
    const T* r0 = x + ((r / oh) * h + 2 * (r % oh)) * w;
    const T* r1 = r0 + w;
    for (int64_t o = 0; o < ow; ++o) {
      a[n] = r0[2 * o], b[n] = r0[2 * o + 1], c[n] = r1[2 * o], d[n] = r1[2 * o + 1];
      if (++n == kChunk) {
        windows(a, b, c, d, n, y + start, code + start);
        start += n;
        n = 0;
      }
    }
  }
  windows(a, b, c, d, n, y + start, code + start);
}

template <class T>
__attribute__((always_inline)) inline void backward_planar(const T* g, const uint8_t* code, int64_t h, int64_t w,
                                                           int64_t r_begin, int64_t r_end, T* gx) {
  const int64_t oh = h / 2, ow = w / 2, end = r_end * ow;
  T a[kChunk], b[kChunk], c[kChunk], d[kChunk];
  int64_t r = r_begin, o = 0;  // the window the next copied-out element belongs to
  T* r0 = gx + ((r / oh) * h + 2 * (r % oh)) * w;
  for (int64_t start = r_begin * ow; start < end; start += kChunk) {
    const int64_t n = std::min(kChunk, end - start);
#pragma GCC ivdep
    for (int64_t j = 0; j < n; ++j) {
      const T v = plus_zero(g[start + j]);
      const uint8_t p = code[start + j];
      a[j] = p == 0 ? v : T(0);
      b[j] = p == 1 ? v : T(0);
      c[j] = p == 2 ? v : T(0);
      d[j] = p == 3 ? v : T(0);
    }
    for (int64_t j = 0; j < n; ++j) {
      r0[2 * o] = a[j], r0[2 * o + 1] = b[j], r0[w + 2 * o] = c[j], r0[w + 2 * o + 1] = d[j];
      if (++o == ow && ++r < r_end) {
        o = 0;
        r0 = gx + ((r / oh) * h + 2 * (r % oh)) * w;
      }
    }
  }
}

// The same loops compiled for AVX-512, for AVX2 and for the baseline ISA (SSE2), the best
// the CPU has chosen at run time (the bf16 CPUs all have AVX-512). The compiler
// vectorises them over channels; the three give the same bits (no fast-math: IEEE
// comparisons and selects only).
#define DT_ROW_KERNELS(T, SUFFIX, ATTR)                                                                    \
  ATTR void forward_row_##SUFFIX(const T* r0, const T* r1, int64_t ow_n, int64_t c_n, T* out, uint8_t* code) { \
    forward_row<T>(r0, r1, ow_n, c_n, out, code);                                                          \
  }                                                                                                        \
  ATTR void backward_row_##SUFFIX(const T* g, const uint8_t* code, int64_t ow_n, int64_t c_n, T* r0, T* r1) {  \
    backward_row<T>(g, code, ow_n, c_n, r0, r1);                                                           \
  }                                                                                                        \
  ATTR void forward_planar_##SUFFIX(const T* x, int64_t h, int64_t w, int64_t rb, int64_t re, T* y, uint8_t* k) { \
    forward_planar<T>(x, h, w, rb, re, y, k);                                                              \
  }                                                                                                        \
  ATTR void backward_planar_##SUFFIX(const T* g, const uint8_t* k, int64_t h, int64_t w, int64_t rb, int64_t re, \
                                     T* gx) {                                                              \
    backward_planar<T>(g, k, h, w, rb, re, gx);                                                            \
  }
#if defined(__x86_64__) || defined(__i386__)
#define DT_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
#define DT_AVX2 __attribute__((target("avx2,fma")))
#else  // elsewhere all three are the baseline build
#define DT_AVX512
#define DT_AVX2
#endif
DT_ROW_KERNELS(uint16_t, bf16_avx512, DT_AVX512)
DT_ROW_KERNELS(float, f32_avx512, DT_AVX512)
DT_ROW_KERNELS(uint16_t, bf16_avx2, DT_AVX2)
DT_ROW_KERNELS(float, f32_avx2, DT_AVX2)
DT_ROW_KERNELS(uint16_t, bf16_base, )
DT_ROW_KERNELS(float, f32_base, )
#undef DT_ROW_KERNELS
#undef DT_AVX512
#undef DT_AVX2

/// The best kernels the CPU runs, unless set_fused_kernels chose others.
std::atomic<int> g_kernels{-1};  // -1: not chosen; 0 base, 1 avx2, 2 avx512
int best_kernels() {
#if defined(__x86_64__) || defined(__i386__)
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq"))
    return 2;
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0;
#else
  return 0;
#endif
}
int kernels() {
  int k = g_kernels.load();
  if (k < 0) {
    const int best = best_kernels();
    k = g_kernels.compare_exchange_strong(k, best) ? best : k;  // a concurrent set_fused_kernels wins
  }
  return k;
}

template <class T>
struct Rows {
  void (*forward)(const T*, const T*, int64_t, int64_t, T*, uint8_t*);
  void (*backward)(const T*, const uint8_t*, int64_t, int64_t, T*, T*);
  void (*forward_planar)(const T*, int64_t, int64_t, int64_t, int64_t, T*, uint8_t*);
  void (*backward_planar)(const T*, const uint8_t*, int64_t, int64_t, int64_t, int64_t, T*);
};
#define DT_ROWS(T, SUFFIX) \
  Rows<T> { forward_row_##SUFFIX, backward_row_##SUFFIX, forward_planar_##SUFFIX, backward_planar_##SUFFIX }
Rows<uint16_t> rows_bf16() {
  const int k = kernels();
  return k == 2 ? DT_ROWS(uint16_t, bf16_avx512) : k == 1 ? DT_ROWS(uint16_t, bf16_avx2) : DT_ROWS(uint16_t, bf16_base);
}
Rows<float> rows_f32() {
  const int k = kernels();
  return k == 2 ? DT_ROWS(float, f32_avx512) : k == 1 ? DT_ROWS(float, f32_avx2) : DT_ROWS(float, f32_base);
}
#undef DT_ROWS

// Rows of work per task: about 64 KiB of input each.
int64_t grain(int64_t row_elems) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, row_elems)); }

// The rows of a pooling: channels-last, n · oh rows of w pixels of c channels; planar,
// n · c · oh rows of w values (c = 1 value per pixel).
struct Layout {
  int64_t planes, h, w, c;  ///< planes: n (channels-last) or n · c (planar)
  Layout(const torch::Tensor& t, bool planar)
      : planes(planar ? t.size(0) * t.size(1) : t.size(0)), h(t.size(2)), w(t.size(3)), c(planar ? 1 : t.size(1)) {}
};

template <class T>
void pool_forward(const torch::Tensor& x, torch::Tensor& y, torch::Tensor& code, Rows<T> k, bool planar) {
  const Layout l(x, planar);
  const int64_t oh = l.h / 2, ow = l.w / 2, w = l.w, c = l.c, h = l.h;
  const T* xp = reinterpret_cast<const T*>(x.data_ptr());
  T* yp = reinterpret_cast<T*>(y.data_ptr());
  uint8_t* cp = code.data_ptr<uint8_t>();
  at::parallel_for(0, l.planes * oh, grain(2 * w * c), [&](int64_t begin, int64_t end) {
    if (planar) return k.forward_planar(xp, h, w, begin, end, yp, cp);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / oh, i = r % oh;
      const T* r0 = xp + ((b * h + 2 * i) * w) * c;
      k.forward(r0, r0 + w * c, ow, c, yp + r * ow * c, cp + r * ow * c);
    }
  });
}

template <class T>
void pool_backward(const torch::Tensor& g, const torch::Tensor& code, torch::Tensor& gx, Rows<T> k, bool planar) {
  const Layout l(gx, planar);
  const int64_t oh = l.h / 2, ow = l.w / 2, w = l.w, c = l.c, h = l.h;
  const T* gp = reinterpret_cast<const T*>(g.data_ptr());
  const uint8_t* cp = code.data_ptr<uint8_t>();
  T* xp = reinterpret_cast<T*>(gx.data_ptr());
  at::parallel_for(0, l.planes * oh, grain(2 * w * c), [&](int64_t begin, int64_t end) {
    if (planar) k.backward_planar(gp, cp, h, w, begin, end, xp);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / oh, i = r % oh;
      T* r0 = xp + ((b * h + 2 * i) * w) * c;
      T* r1 = r0 + w * c;
      if (!planar) k.backward(gp + r * ow * c, cp + r * ow * c, ow, c, r0, r1);
      if (w % 2) {  // the last column is in no window
        std::memset(r0 + (w - 1) * c, 0, sizeof(T) * c);
        std::memset(r1 + (w - 1) * c, 0, sizeof(T) * c);
      }
      if (h % 2 && i == oh - 1) std::memset(r1 + w * c, 0, sizeof(T) * w * c);  // the last row likewise
    }
  });
}

struct PoolReluFn : torch::autograd::Function<PoolReluFn> {
  // `planar`: x is NCHW-contiguous, else channels-last; the output, the code bytes and
  // the input gradient are laid out as x (as libtorch's pooling lays out its output).
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, bool planar) {
    const auto format = planar ? at::MemoryFormat::Contiguous : at::MemoryFormat::ChannelsLast;
    auto y = at::empty({x.size(0), x.size(1), x.size(2) / 2, x.size(3) / 2}, x.options().memory_format(format));
    auto code = at::empty({x.numel() / (x.size(2) * x.size(3)) * (x.size(2) / 2) * (x.size(3) / 2)},
                          x.options().dtype(at::kByte));
    if (x.scalar_type() == at::kBFloat16)
      pool_forward<uint16_t>(x, y, code, rows_bf16(), planar);
    else
      pool_forward<float>(x, y, code, rows_f32(), planar);
    ctx->save_for_backward({code});
    ctx->saved_data["h"] = x.size(2);
    ctx->saved_data["w"] = x.size(3);
    ctx->saved_data["planar"] = planar;
    return y;
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const bool planar = ctx->saved_data["planar"].toBool();
    const auto format = planar ? at::MemoryFormat::Contiguous : at::MemoryFormat::ChannelsLast;
    const auto code = ctx->get_saved_variables()[0];
    const auto g = grads[0].contiguous(format);
    auto gx = at::empty({g.size(0), g.size(1), ctx->saved_data["h"].toInt(), ctx->saved_data["w"].toInt()},
                        g.options().memory_format(format));
    if (g.scalar_type() == at::kBFloat16)
      pool_backward<uint16_t>(g, code, gx, rows_bf16(), planar);
    else
      pool_backward<float>(g, code, gx, rows_f32(), planar);
    return {gx, torch::Tensor()};
  }
};

struct MeanHwFn : torch::autograd::Function<MeanHwFn> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x) {
    ctx->saved_data["sizes"] = x.sizes().vec();
    return x.mean({2, 3});
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto sizes = ctx->saved_data["sizes"].toIntVector();
    // libtorch: sum_backward(grad) / (H·W), i.e. expand then divide; the same division
    // of each element, done before the expansion.
    const auto g = grads[0] / (sizes[2] * sizes[3]);
    return {g.view({sizes[0], sizes[1], 1, 1}).expand(sizes)};
  }
};

}  // namespace

void set_fused_ops(bool on) { g_fused.store(on); }

std::string set_fused_kernels(const std::string& isa) {
  const int best = best_kernels();
  const int k = isa == "avx512" ? 2 : isa == "avx2" ? 1 : isa == "base" ? 0 : isa == "best" ? best : -1;
  DT_CHECK(k >= 0, "fused ops: expected kernels avx512, avx2, base or best, found '", isa, "'");
  DT_CHECK(k <= best, "fused ops: this CPU cannot run the ", isa, " kernels");
  g_kernels.store(k);
  return k == 2 ? "avx512" : k == 1 ? "avx2" : "base";
}
bool fused_ops_enabled() { return g_fused.load(); }

torch::Tensor max_pool2x2_relu(const torch::Tensor& x) {
  const bool applies = fused_ops_enabled() && torch::GradMode::is_enabled() && x.requires_grad() && x.dim() == 4 &&
                       (x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kFloat) && x.device().is_cpu() &&
                       x.layout() == at::kStrided && x.size(2) >= 2 && x.size(3) >= 2 && x.size(0) > 0 && x.size(1) > 0;
  // The layout libtorch's pooling would take (suggest_memory_format), stored densely in it.
  const bool channels_last = applies && x.suggest_memory_format() == at::MemoryFormat::ChannelsLast;
  const bool dense =
      applies && x.is_contiguous(channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
  if (!dense) {
    auto p = at::max_pool2d(x, {2, 2});
    return at::relu_(p);
  }
  return PoolReluFn::apply(x, !channels_last);
}

torch::Tensor mean_hw(const torch::Tensor& x) {
  if (!(fused_ops_enabled() && torch::GradMode::is_enabled() && x.requires_grad() && x.dim() == 4))
    return x.mean({2, 3});
  return MeanHwFn::apply(x);
}

}  // namespace dualtune::models

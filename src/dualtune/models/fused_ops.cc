#include "dualtune/models/fused_ops.h"

#include <ATen/Parallel.h>

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

// One output row: input rows r0 = 2·oh and r1 = 2·oh + 1 (NHWC, C channels per pixel).
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
    for (int64_t ch = 0; ch < c_n; ++ch) {
      // From max = −inf the first element is always taken (a > −inf, or NaN, or
      // a == −inf == max): start from it.
      T mb = a[ch];
      float mv = value(mb);
      uint8_t pos = 0;
      const T vb = b[ch], vc = c[ch], vd = d[ch];
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
      o[ch] = mv < 0.0f ? T(0) : mb;          // relu: max(v, 0) keeps −0 and NaN
      k[ch] = mv <= 0.0f ? kNoGrad : pos;     // threshold_backward: zero where relu(v) ≤ 0
    }
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

// The same loops compiled for AVX-512 (chosen at run time where the CPU has it; the
// bf16 CPUs all do) and for the baseline ISA. The compiler vectorises them over channels.
#define DT_ROW_KERNELS(T, SUFFIX, ATTR)                                                                    \
  ATTR void forward_row_##SUFFIX(const T* r0, const T* r1, int64_t ow_n, int64_t c_n, T* out, uint8_t* code) { \
    forward_row<T>(r0, r1, ow_n, c_n, out, code);                                                          \
  }                                                                                                        \
  ATTR void backward_row_##SUFFIX(const T* g, const uint8_t* code, int64_t ow_n, int64_t c_n, T* r0, T* r1) {  \
    backward_row<T>(g, code, ow_n, c_n, r0, r1);                                                           \
  }
#define DT_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
DT_ROW_KERNELS(uint16_t, bf16_avx512, DT_AVX512)
DT_ROW_KERNELS(float, f32_avx512, DT_AVX512)
DT_ROW_KERNELS(uint16_t, bf16_base, )
DT_ROW_KERNELS(float, f32_base, )
#undef DT_ROW_KERNELS
#undef DT_AVX512

bool has_avx512() {
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  return yes;
}

template <class T>
struct Rows {
  void (*forward)(const T*, const T*, int64_t, int64_t, T*, uint8_t*);
  void (*backward)(const T*, const uint8_t*, int64_t, int64_t, T*, T*);
};
Rows<uint16_t> rows_bf16() {
  return has_avx512() ? Rows<uint16_t>{forward_row_bf16_avx512, backward_row_bf16_avx512}
                      : Rows<uint16_t>{forward_row_bf16_base, backward_row_bf16_base};
}
Rows<float> rows_f32() {
  return has_avx512() ? Rows<float>{forward_row_f32_avx512, backward_row_f32_avx512}
                      : Rows<float>{forward_row_f32_base, backward_row_f32_base};
}

// Rows of work per task: about 64 KiB of input each.
int64_t grain(int64_t row_elems) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, row_elems)); }

template <class T>
void pool_forward(const torch::Tensor& x, torch::Tensor& y, torch::Tensor& code, Rows<T> k) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3), oh = h / 2, ow = w / 2;
  const T* xp = reinterpret_cast<const T*>(x.data_ptr());
  T* yp = reinterpret_cast<T*>(y.data_ptr());
  uint8_t* cp = code.data_ptr<uint8_t>();
  at::parallel_for(0, n * oh, grain(2 * w * c), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / oh, i = r % oh;
      const T* r0 = xp + ((b * h + 2 * i) * w) * c;
      k.forward(r0, r0 + w * c, ow, c, yp + r * ow * c, cp + r * ow * c);
    }
  });
}

template <class T>
void pool_backward(const torch::Tensor& g, const torch::Tensor& code, torch::Tensor& gx, Rows<T> k) {
  const int64_t n = gx.size(0), c = gx.size(1), h = gx.size(2), w = gx.size(3), oh = h / 2, ow = w / 2;
  const T* gp = reinterpret_cast<const T*>(g.data_ptr());
  const uint8_t* cp = code.data_ptr<uint8_t>();
  T* xp = reinterpret_cast<T*>(gx.data_ptr());
  at::parallel_for(0, n * oh, grain(2 * w * c), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / oh, i = r % oh;
      T* r0 = xp + ((b * h + 2 * i) * w) * c;
      T* r1 = r0 + w * c;
      k.backward(gp + r * ow * c, cp + r * ow * c, ow, c, r0, r1);
      if (w % 2) {  // the last column is in no window
        std::memset(r0 + (w - 1) * c, 0, sizeof(T) * c);
        std::memset(r1 + (w - 1) * c, 0, sizeof(T) * c);
      }
      if (h % 2 && i == oh - 1) std::memset(r1 + w * c, 0, sizeof(T) * w * c);  // the last row likewise
    }
  });
}

struct PoolReluFn : torch::autograd::Function<PoolReluFn> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x) {
    const auto cl = at::MemoryFormat::ChannelsLast;
    auto y = at::empty({x.size(0), x.size(1), x.size(2) / 2, x.size(3) / 2}, x.options().memory_format(cl));
    auto code = at::empty({x.size(0), x.size(2) / 2, x.size(3) / 2, x.size(1)}, x.options().dtype(at::kByte));
    if (x.scalar_type() == at::kBFloat16)
      pool_forward<uint16_t>(x, y, code, rows_bf16());
    else
      pool_forward<float>(x, y, code, rows_f32());
    ctx->save_for_backward({code});
    ctx->saved_data["h"] = x.size(2);
    ctx->saved_data["w"] = x.size(3);
    return y;
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto cl = at::MemoryFormat::ChannelsLast;
    const auto code = ctx->get_saved_variables()[0];
    const auto g = grads[0].contiguous(cl);
    auto gx = at::empty({g.size(0), g.size(1), ctx->saved_data["h"].toInt(), ctx->saved_data["w"].toInt()},
                        g.options().memory_format(cl));
    if (g.scalar_type() == at::kBFloat16)
      pool_backward<uint16_t>(g, code, gx, rows_bf16());
    else
      pool_backward<float>(g, code, gx, rows_f32());
    return {gx};
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
bool fused_ops_enabled() { return g_fused.load(); }

torch::Tensor max_pool2x2_relu(const torch::Tensor& x) {
  const bool applies = fused_ops_enabled() && torch::GradMode::is_enabled() && x.requires_grad() && x.dim() == 4 &&
                       (x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kFloat) && x.device().is_cpu() &&
                       x.size(2) >= 2 && x.size(3) >= 2 && x.size(0) > 0 && x.size(1) > 0 &&
                       x.suggest_memory_format() == at::MemoryFormat::ChannelsLast &&
                       x.is_contiguous(at::MemoryFormat::ChannelsLast);
  if (!applies) {
    auto p = at::max_pool2d(x, {2, 2});
    return at::relu_(p);
  }
  return PoolReluFn::apply(x);
}

torch::Tensor mean_hw(const torch::Tensor& x) {
  if (!(fused_ops_enabled() && torch::GradMode::is_enabled() && x.requires_grad() && x.dim() == 4))
    return x.mean({2, 3});
  return MeanHwFn::apply(x);
}

}  // namespace dualtune::models

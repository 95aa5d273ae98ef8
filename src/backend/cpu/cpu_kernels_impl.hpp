// The bodies of the CPU kernels (cpu_kernels.hpp), included by each
// cpu_kernels_<isa>.cpp and compiled with that instruction set. No
// floating-point reassociation anywhere: vectors run across independent
// output elements only.
//
// Everything here has internal linkage, the random numbers included: an
// inline function with external linkage compiled for AVX-512 in one file
// could be the copy the linker keeps for all of them, and then run on a CPU
// without AVX-512. So no call leaves this file except to libc/libm.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <climits>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <type_traits>
#include <utility>
#include <vector>

#include "cpu_kernels.hpp"

namespace {
#include "gcn/rng.hpp"  // NOLINT: inside the anonymous namespace on purpose (see above)

using ::gcn::cpu::AdamScalars;
using ::gcn::cpu::GatShape;

typedef double d8 __attribute__((vector_size(64)));

// Rows of the GEMMs computed together (AVX-512: eight 8-double
// accumulators, kept in zmm registers).
constexpr int kGemmRows = 8;
typedef float f8 __attribute__((vector_size(32)));

// kWidth (1..8) floats as doubles, the rest 0: the last block of a row
// reads no further than the row's end.
// A masked load where the instruction set has one (a copy through memory
// would stall on store forwarding once per load).
template <int kWidth>
inline d8 load8(const float* p) {
  f8 f = {};
  if constexpr (kWidth == 8) {
    std::memcpy(&f, p, sizeof f);
  } else {
#if defined(__AVX512F__) && defined(__AVX512VL__)
    f = reinterpret_cast<f8>(_mm256_maskz_loadu_ps(static_cast<__mmask8>((1u << kWidth) - 1u), p));
#else
    for (int j = 0; j < kWidth; ++j) f[j] = p[j];
#endif
  }
  return __builtin_convertvector(f, d8);
}

#if defined(__AVX512F__)
// kW (1..16) floats into a 512-bit register (the rest 0), and back.
template <int kW>
inline __m512 load16(const float* p) {
  if constexpr (kW == 16) {
    return _mm512_loadu_ps(p);
  } else {
    return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << kW) - 1u), p);
  }
}
template <int kW>
inline void store16(float* p, __m512 v) {
  if constexpr (kW == 16) {
    _mm512_storeu_ps(p, v);
  } else {
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << kW) - 1u), v);
  }
}
#endif

// Calls fn(j0, width) over [0, n) in blocks of 8 columns, width a
// std::integral_constant (8, then the remaining 1..7 once).
template <int kW, typename Fn>
void block8(int64_t j0, Fn& fn) {
  fn(j0, std::integral_constant<int, kW>{});
}
template <typename Fn>
void for_blocks_of_8(int64_t n, Fn&& fn) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) fn(j, std::integral_constant<int, 8>{});
  using Call = void (*)(int64_t, Fn&);
  static constexpr Call kTail[] = {&block8<1, Fn>, &block8<2, Fn>, &block8<3, Fn>, &block8<4, Fn>,
                                   &block8<5, Fn>, &block8<6, Fn>, &block8<7, Fn>};
  if (j < n) kTail[n - j - 1](j, fn);
}

// Calls fn(j0, width) over the columns [0, n): blocks of 16, then one block
// of the remaining 1..15, width a std::integral_constant. A block's
// accumulators are a fixed-size local array the compiler keeps in registers
// for the whole reduction.
template <int kW, typename Fn>
void column_block(int64_t j0, Fn& fn) {
  fn(j0, std::integral_constant<int, kW>{});
}
template <typename Fn, int... kWs>
void remainder_block(int64_t j0, int64_t width, Fn& fn, std::integer_sequence<int, kWs...>) {
  using Call = void (*)(int64_t, Fn&);
  static constexpr Call kCalls[] = {&column_block<kWs + 1, Fn>...};
  kCalls[width - 1](j0, fn);
}
template <typename Fn>
void for_column_blocks(int64_t n, Fn&& fn) {
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) fn(j, std::integral_constant<int, 16>{});
  if (j < n) remainder_block(j, n - j, fn, std::make_integer_sequence<int, 15>{});
}

// One row of c: its entries in stored order, then the bias.
template <int kW>
inline void spmm_row(const int32_t* indices, const float* values, const float* b, int64_t ldb, const float* bias,
                     float* c, int64_t ldc, int64_t i, int32_t begin, int32_t end, int64_t j0) {
  float acc[kW] = {};
  for (int32_t e = begin; e < end; ++e) {
    const float w = values[e];
    const float* row = b + static_cast<int64_t>(indices[e]) * ldb + j0;
    for (int j = 0; j < kW; ++j) acc[j] += w * row[j];
  }
  if (bias != nullptr) {
    for (int j = 0; j < kW; ++j) acc[j] += bias[j0 + j];
  }
  for (int j = 0; j < kW; ++j) c[i * ldc + j0 + j] = acc[j];
}

// c rows order[g0..g1) (rows sorted by length, longest first) in groups of
// four: the four rows' sums advance in lockstep over their common length,
// four independent chains instead of one (each row's sum still runs in its
// stored order, so nothing changes but the speed), then each finishes alone.
// b and c: n columns at row strides ldb, ldc >= n.
void spmm_strided(const int32_t* indptr, const int32_t* indices, const float* values, const int32_t* order,
                  const float* b, int64_t ldb, int64_t n, const float* bias, float* c, int64_t ldc, int64_t g0,
                  int64_t g1) {
  int64_t g = g0;
  for (; g + 4 <= g1; g += 4) {
    const int64_t rows[4] = {order[g], order[g + 1], order[g + 2], order[g + 3]};
    int32_t begin[4], end[4];
    int32_t common = INT32_MAX;
    for (int r = 0; r < 4; ++r) {
      begin[r] = indptr[rows[r]];
      end[r] = indptr[rows[r] + 1];
      common = end[r] - begin[r] < common ? end[r] - begin[r] : common;
    }
    for_column_blocks(n, [&](int64_t j0, auto width) {
      constexpr int kW = decltype(width)::value;
#if defined(__AVX512F__)
      // One 16-lane register per row (masked to the block's width).
      __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
      for (int32_t e = 0; e < common; ++e) {
#pragma GCC unroll 4
        for (int r = 0; r < 4; ++r) {
          const __m512 w = _mm512_set1_ps(values[begin[r] + e]);
          const float* row = b + static_cast<int64_t>(indices[begin[r] + e]) * ldb + j0;
          acc[r] = _mm512_add_ps(acc[r], _mm512_mul_ps(w, load16<kW>(row)));
        }
      }
      for (int r = 0; r < 4; ++r) {
        for (int32_t e = begin[r] + common; e < end[r]; ++e) {
          const __m512 w = _mm512_set1_ps(values[e]);
          const float* row = b + static_cast<int64_t>(indices[e]) * ldb + j0;
          acc[r] = _mm512_add_ps(acc[r], _mm512_mul_ps(w, load16<kW>(row)));
        }
        if (bias != nullptr) acc[r] = _mm512_add_ps(acc[r], load16<kW>(bias + j0));
        store16<kW>(c + rows[r] * ldc + j0, acc[r]);
      }
#else
      float acc[4][kW] = {};
      for (int32_t e = 0; e < common; ++e) {
#pragma GCC unroll 4
        for (int r = 0; r < 4; ++r) {
          const float w = values[begin[r] + e];
          const float* row = b + static_cast<int64_t>(indices[begin[r] + e]) * ldb + j0;
          for (int j = 0; j < kW; ++j) acc[r][j] += w * row[j];
        }
      }
      for (int r = 0; r < 4; ++r) {
        for (int32_t e = begin[r] + common; e < end[r]; ++e) {
          const float w = values[e];
          const float* row = b + static_cast<int64_t>(indices[e]) * ldb + j0;
          for (int j = 0; j < kW; ++j) acc[r][j] += w * row[j];
        }
        if (bias != nullptr) {
          for (int j = 0; j < kW; ++j) acc[r][j] += bias[j0 + j];
        }
        for (int j = 0; j < kW; ++j) c[rows[r] * ldc + j0 + j] = acc[r][j];
      }
#endif
    });
  }
  for (; g < g1; ++g) {
    const int64_t i = order[g];
    for_column_blocks(n, [&](int64_t j0, auto width) {
      spmm_row<decltype(width)::value>(indices, values, b, ldb, bias, c, ldc, i, indptr[i], indptr[i + 1],
                                       j0);
    });
  }
}

void spmm(const int32_t* indptr, const int32_t* indices, const float* values, const int32_t* order, const float* b,
          int64_t n, const float* bias, float* c, int64_t g0, int64_t g1) {
  spmm_strided(indptr, indices, values, order, b, n, n, bias, c, n, g0, g1);
}

#if defined(__AVX512F__)
// kRows rows of c at once: kRows independent accumulation chains, so the
// adds overlap instead of waiting on each other; each b block is converted
// to double once per row group.
constexpr int64_t kMaxInner = 64;  // the b blocks of up to this many p at a time, on the stack

template <int kRows>
inline void gemm_nn_rows(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t k, int64_t n, float* c,
                         int64_t ldc, int64_t i) {
  d8 bd[kMaxInner];
  for_blocks_of_8(n, [&](int64_t j0, auto width) {
    constexpr int kWidth = decltype(width)::value;
    d8 acc[kRows] = {};
    for (int64_t p0 = 0; p0 < k; p0 += kMaxInner) {
      const int64_t len = k - p0 < kMaxInner ? k - p0 : kMaxInner;
      for (int64_t p = 0; p < len; ++p) bd[p] = load8<kWidth>(b + (p0 + p) * ldb + j0);
      for (int64_t p = 0; p < len; ++p) {
#pragma GCC unroll 8
        for (int r = 0; r < kRows; ++r) acc[r] += static_cast<double>(a[(i + r) * lda + p0 + p]) * bd[p];
      }
    }
    for (int r = 0; r < kRows; ++r) {
      for (int j = 0; j < kWidth; ++j) c[(i + r) * ldc + j0 + j] = static_cast<float>(acc[r][j]);
    }
  });
}

// For k <= kMaxInner (a hidden layer's width): each block of b converted to
// double once per call, then every group of kRows rows against it.
template <int kRows, int kWidth>
inline void gemm_nn_block(const float* a, int64_t lda, const d8* bd, int64_t k, float* c, int64_t ldc, int64_t i,
                          int64_t j0) {
  d8 acc[kRows] = {};
  for (int64_t p = 0; p < k; ++p) {
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) acc[r] += static_cast<double>(a[(i + r) * lda + p]) * bd[p];
  }
  for (int r = 0; r < kRows; ++r) {
    for (int j = 0; j < kWidth; ++j) c[(i + r) * ldc + j0 + j] = static_cast<float>(acc[r][j]);
  }
}

void gemm_nn(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t k, int64_t n, float* c, int64_t ldc,
             int64_t r0, int64_t r1) {
  if (k <= kMaxInner) {
    d8 bd[kMaxInner];
    for_blocks_of_8(n, [&](int64_t j0, auto width) {
      constexpr int kWidth = decltype(width)::value;
      for (int64_t p = 0; p < k; ++p) bd[p] = load8<kWidth>(b + p * ldb + j0);
      int64_t i = r0;
      for (; i + kGemmRows <= r1; i += kGemmRows) gemm_nn_block<kGemmRows, kWidth>(a, lda, bd, k, c, ldc, i, j0);
      for (; i < r1; ++i) gemm_nn_block<1, kWidth>(a, lda, bd, k, c, ldc, i, j0);
    });
    return;
  }
  int64_t i = r0;
  for (; i + kGemmRows <= r1; i += kGemmRows) gemm_nn_rows<kGemmRows>(a, lda, b, ldb, k, n, c, ldc, i);
  for (; i < r1; ++i) gemm_nn_rows<1>(a, lda, b, ldb, k, n, c, ldc, i);
}

template <int kRows>
inline void gemm_tn_rows(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t n, int64_t p0, int64_t p1,
                         double* acc_out, int64_t i0, bool accumulate) {
  for_blocks_of_8(n, [&](int64_t j0, auto width) {
    constexpr int kWidth = decltype(width)::value;
    d8 acc[kRows] = {};
    if (accumulate) {
      for (int r = 0; r < kRows; ++r) {
        for (int j = 0; j < kWidth; ++j) acc[r][j] = acc_out[(i0 + r) * n + j0 + j];
      }
    }
    for (int64_t p = p0; p < p1; ++p) {
      const d8 bp = load8<kWidth>(b + p * ldb + j0);
#pragma GCC unroll 8
      for (int r = 0; r < kRows; ++r) {
        const double ap = a[p * lda + i0 + r];
        const d8 apv = ap + d8{};
        // Zeros of a (ReLU's, about half of a hidden layer) add nothing: a
        // select (a branch would mispredict on them).
        acc[r] = apv != 0.0 ? acc[r] + ap * bp : acc[r];
      }
    }
    for (int r = 0; r < kRows; ++r) {
      for (int j = 0; j < kWidth; ++j) acc_out[(i0 + r) * n + j0 + j] = acc[r][j];
    }
  });
}

void gemm_tn(const float* a, int64_t lda, int64_t /*m*/, const float* b, int64_t ldb, int64_t n, int64_t p0,
             int64_t p1, int64_t r0, int64_t r1, double* acc, bool accumulate) {
  int64_t i = r0;
  for (; i + kGemmRows <= r1; i += kGemmRows) gemm_tn_rows<kGemmRows>(a, lda, b, ldb, n, p0, p1, acc, i, accumulate);
  for (; i < r1; ++i) gemm_tn_rows<1>(a, lda, b, ldb, n, p0, p1, acc, i, accumulate);
}

#else
// Without AVX-512 (too few registers for the vector version's row groups):
// each element of a row accumulates in double in its own lane of a
// fixed-size block, the earlier scalar form the compiler vectorizes well.
void gemm_nn(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t k, int64_t n, float* c, int64_t ldc,
             int64_t r0, int64_t r1) {
  for (int64_t i = r0; i < r1; ++i) {
    const float* arow = a + i * lda;
    for_column_blocks(n, [&](int64_t j0, auto width) {
      constexpr int kW = decltype(width)::value;
      double acc[kW] = {};
      for (int64_t p = 0; p < k; ++p) {
        const double aip = arow[p];
        const float* brow = b + p * ldb + j0;
        for (int j = 0; j < kW; ++j) acc[j] += aip * brow[j];
      }
      for (int j = 0; j < kW; ++j) c[i * ldc + j0 + j] = static_cast<float>(acc[j]);
    });
  }
}

void gemm_tn(const float* a, int64_t lda, int64_t /*m*/, const float* b, int64_t ldb, int64_t n, int64_t p0,
             int64_t p1, int64_t r0, int64_t r1, double* acc_out, bool accumulate) {
  for (int64_t i = r0; i < r1; ++i) {
    for_column_blocks(n, [&](int64_t j0, auto width) {
      constexpr int kW = decltype(width)::value;
      double acc[kW] = {};
      if (accumulate) {
        for (int j = 0; j < kW; ++j) acc[j] = acc_out[i * n + j0 + j];
      }
      for (int64_t p = p0; p < p1; ++p) {
        const double api = a[p * lda + i];
        const float* brow = b + p * ldb + j0;
        // Zeros of a (ReLU's, about half of a hidden layer) add nothing,
        // not even a -0 or a 0 * inf: a select, as a branch mispredicts.
        for (int j = 0; j < kW; ++j) acc[j] = api != 0.0 ? acc[j] + api * brow[j] : acc[j];
      }
      for (int j = 0; j < kW; ++j) acc_out[i * n + j0 + j] = acc[j];
    });
  }
}

#endif  // __AVX512F__

void relu_dropout_forward(const float* x, float* y, int64_t ld, int64_t cols, int64_t r0, int64_t r1, bool drop,
                          float p, float scale, uint64_t key) {
  // Selects, not branches: the keep decisions are coin flips.
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * ld;
    float* yr = y + r * ld;
    for (int64_t j = 0; j < cols; ++j) {
      const float v = xr[j] > 0.0f ? xr[j] : 0.0f;
      const float keep =
          !drop || gcn::dropout_keep_keyed(key, static_cast<uint64_t>(r * cols + j), p) ? scale : 0.0f;
      yr[j] = v * keep;
    }
  }
}

void relu_dropout_backward(const float* dy, const float* y, float* dx, int64_t ld, int64_t cols, int64_t r0,
                           int64_t r1, float scale) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* dyr = dy + r * ld;
    const float* yr = y + r * ld;
    float* dxr = dx + r * ld;
    for (int64_t j = 0; j < cols; ++j) {
      const float g = dyr[j] * scale;  // loaded unconditionally: a select, not a branch per element
      dxr[j] = yr[j] > 0.0f ? g : 0.0f;
    }
  }
}

// ELU + dropout: y = (x > 0 ? x : expm1(x)) times the mask's 0 or scale,
// expm1 as gcn::elu_expm1 (float operations only, the CUDA kernel's bits;
// the loop vectorises like ReLU's).
void elu_dropout_forward(const float* x, float* y, int64_t ld, int64_t cols, int64_t r0, int64_t r1, bool drop,
                         float p, float scale, uint64_t key) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * ld;
    float* yr = y + r * ld;
    for (int64_t j = 0; j < cols; ++j) {
      const float v = xr[j] > 0.0f ? xr[j] : gcn::elu_expm1(xr[j]);
      const float keep =
          !drop || gcn::dropout_keep_keyed(key, static_cast<uint64_t>(r * cols + j), p) ? scale : 0.0f;
      yr[j] = v * keep;
    }
  }
}

// dx = (dy · elu'(x)) · scale where kept (the mask recomputed), else 0;
// elu'(x) from the forward output y: 1 where y > 0, else y · (1 - p) + 1
// (= exp(x)).
void elu_dropout_backward(const float* dy, const float* y, float* dx, int64_t ld, int64_t cols, int64_t r0, int64_t r1,
                          bool drop, float p, float scale, uint64_t key) {
  const float keep_fraction = 1.0f - p;
  for (int64_t r = r0; r < r1; ++r) {
    const float* dyr = dy + r * ld;
    const float* yr = y + r * ld;
    float* dxr = dx + r * ld;
    for (int64_t j = 0; j < cols; ++j) {
      const bool kept = !drop || gcn::dropout_keep_keyed(key, static_cast<uint64_t>(r * cols + j), p);
      const float slope = yr[j] > 0.0f ? 1.0f : yr[j] * keep_fraction + 1.0f;
      const float g = (dyr[j] * slope) * scale;  // computed for every element: a select, not a branch
      dxr[j] = kept ? g : 0.0f;
    }
  }
}

void column_sum(const float* x, int64_t ld, int64_t cols, int64_t r0, int64_t r1, double* acc) {
  for (int64_t i = r0; i < r1; ++i) {
    const float* row = x + i * ld;
    for (int64_t j = 0; j < cols; ++j) acc[j] += row[j];
  }
}

void adam(float* params, const float* grads, float* m, float* v, int64_t i0, int64_t i1, const AdamScalars& s) {
  for (int64_t i = i0; i < i1; ++i) {
    const float g = grads[i] + s.weight_decay * params[i];
    m[i] = m[i] * s.beta1 + s.one_minus_b1 * g;
    v[i] = v[i] * s.beta2 + s.one_minus_b2 * g * g;
    const float denom = __builtin_sqrtf(v[i]) / s.bc2_sqrt + s.eps;
    params[i] -= s.step_size * (m[i] / denom);
  }
}

void adam_block(float* params, const float* grads, float* m, float* v, int64_t cols, int batch, int64_t r0, int64_t r1,
                const AdamScalars* s, const uint8_t* skip) {
  const int64_t ld = cols * batch;
  for (int64_t r = r0; r < r1; ++r) {
    for (int k = 0; k < batch; ++k) {
      if (skip[k] != 0) continue;
      const int64_t i0 = r * ld + k * cols;
      adam(params, grads, m, v, i0, i0 + cols, s[k]);
    }
  }
}

// Graph attention and the sparse input dropout.
#include "cpu_kernels_gat.hpp"  // NOLINT: inside the anonymous namespace on purpose (see above)

}  // namespace

#define GCN_CPU_KERNEL_TABLE(name_string)                                                                   \
  {                                                                                                          \
    name_string, &spmm, &gemm_nn, &gemm_tn, &relu_dropout_forward, &relu_dropout_backward, &column_sum, &adam, \
        &adam_block, &spmm_strided, &elu_dropout_forward, &elu_dropout_backward, &dropout_factors,            \
        &sparse_dropout, &gat_scores, &gat_softmax, &gat_aggregate, &gat_backward_targets,                   \
        &gat_backward_sources, &gat_attention_grad, &softmax_exp_floats                                      \
  }

// The CPU kernels of graph attention (GATConv) and of the dropout masks
// (the attention coefficients', the sparse input features'): included by
// cpu_kernels_impl.hpp inside its anonymous namespace, so compiled once per
// instruction set like the other kernels (no FMA contraction: every product
// and sum is two roundings, as the CUDA kernels' __fmul_rn / __fadd_rn).
//
// Summation orders, the same as kernels/gat.cu's so that the two backends
// differ only where exp differs: channel sums (the scores, the gradient of
// an attention coefficient) in channel order, float, from 0; sums over a
// node's in-edges in edge order, float; sums over a node's out-edges in
// EdgeLists::out_edge order, float; the attention parameters' gradients
// (sums over every node) in node order, in double. Each (node, model, head)
// is computed on its own, so a model's block of a batch has the bits of the
// same model alone, and no result depends on how the nodes are split over
// threads.
//
// Every variant computes the same bits. The portable loops (*_loops) are
// the baseline's and AVX2's. With AVX-512 the same operations run 16 lanes
// at a time, across heads, columns or edges, never across a sum's terms:
// - the sums over a node's edges run 16 columns at a time, each column's
//   coefficient (that of its head, column / ch) spread over the columns by
//   a permute (GroupHeads);
// - the channel sums of several heads at once (head_sums): step c adds
//   channel c of every head (lane t picks element t · ch + c of the
//   products by a permute), so each head still adds its channels in order;
// - the softmax's exp runs over a range's coefficients at once (they are
//   contiguous), the division over each node's rows at once;
// - the mask hashes run 8 indices at a time (64-bit lanes).
// exp is glibc's expf, copied (softmax_exp) so that it vectorises.
// Masked stores do not forward to later loads: a row stored with a masked
// store is not read back at once (the values are recomputed, or kept in
// other arrays), else every edge would wait for the store to complete.
// The attention dropout's factors come precomputed (dropout_factors): one
// hash per coefficient per call, not one per use.

constexpr float kGatNegativeSlope = 0.2f;  // GATConv's leaky_relu

inline float gat_leaky_relu(float u) { return u > 0.0f ? u : kGatNegativeSlope * u; }

// fmaxf (a NaN loses to a number; CUDA's too) without the library call.
inline float max_ignoring_nan(float a, float b) {
  if (a != a) return b;
  if (b != b) return a;
  return a > b ? a : b;
}

// ---- the softmax's exp ------------------------------------------------------------

// With FMA (the AVX2 and AVX-512 variants): glibc's expf copied operation
// for operation (sysdeps/ieee754/flt-32/e_expf.c as glibc builds it for
// CPUs with FMA, __expf_fma, the one its expf picks on every CPU these
// variants run on), so that it inlines and vectorises: the bits of
// std::exp with glibc 2.27 or later, on every float (all 2^32 checked;
// TEST(GatKernels, SoftmaxExpIsTheLibrarys) checks it where the tests run).
// Without FMA (the baseline) the library's expf itself. The algorithm and
// its constants come from Arm's optimized-routines (math/expf.c, by
// Szabolcs Nagy; MIT OR Apache-2.0 WITH LLVM-exception), which glibc
// adopted as its expf in 2.27.
#if defined(__FMA__)
namespace glibc_expf {
// 2^(i/32) as bits, less i << 47 (glibc's __exp2f_data.tab).
constexpr uint64_t kTable[32] = {0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
                                 0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
                                 0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
                                 0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
                                 0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
                                 0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
                                 0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
                                 0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540};
constexpr double kInvLn2N = 0x1.71547652b82fep+5;  // 32 / ln 2
constexpr double kShift = 0x1.8p52;                // rounds to an integer
constexpr double kC0 = 0x1.c6af84b912394p-20, kC1 = 0x1.ebfce50fac4f3p-13, kC2 = 0x1.62e42ff0c52d6p-6;
// |x| >= 88 (or NaN) takes the special path: (bits >> 20) & 0x7ff >= kSpecialTop.
constexpr uint32_t kSpecialTop = 0x42b;
}  // namespace glibc_expf

inline float softmax_exp(float x) {
  namespace c = glibc_expf;
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  if (((bits >> 20) & 0x7ff) >= c::kSpecialTop) {
    if (bits == 0xff800000u) return 0.0f;               // -inf
    if (((bits >> 20) & 0x7ff) >= 0x7f8) return x + x;  // inf, NaN
    if (x > 0x1.62e42ep6f) return INFINITY;             // overflow
    if (x < -0x1.9fe368p6f) return 0.0f;                // underflow
    if (x < -0x1.9d1d9ep6f) return 0x1p-149f;           // the smallest subnormal
  }
  // exp(x) = 2^(k/32) · 2^(r/32), k = round(x · 32 / ln 2).
  const double xd = x;
  const double z = std::fma(c::kInvLn2N, xd, c::kShift);
  uint64_t ki;
  std::memcpy(&ki, &z, sizeof ki);
  const double kd = z - c::kShift;
  const double r = std::fma(c::kInvLn2N, xd, -kd);
  const uint64_t t = c::kTable[ki % 32] + (ki << 47);
  double s;
  std::memcpy(&s, &t, sizeof s);
  const double p = std::fma(c::kC0, r, c::kC1);
  const double r2 = r * r;
  double y = std::fma(r, c::kC2, 1.0);
  y = std::fma(p, r2, y);
  return static_cast<float>(y * s);
}
#else
inline float softmax_exp(float x) { return std::exp(x); }
#endif

// y = softmax_exp(x) element by element (AVX-512: 16 at a time).
void softmax_exp_floats(const float* x, float* y, int64_t n);

// ---- dropout masks --------------------------------------------------------------

// m[r · ld + j] = mask factor of element r · cols + j: a loop over a
// contiguous index range when the rows are contiguous (ld == cols), so that
// it vectorises whatever the width (one head: one column).
[[maybe_unused]] void dropout_factors_loops(float* m, int64_t ld, int64_t cols, int64_t r0, int64_t r1, float p,
                                            float scale, uint64_t key) {
  if (ld == cols) {
    for (int64_t q = r0 * cols; q < r1 * cols; ++q) {
      m[q] = gcn::dropout_keep_keyed(key, static_cast<uint64_t>(q), p) ? scale : 0.0f;
    }
    return;
  }
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t j = 0; j < cols; ++j) {
      m[r * ld + j] = gcn::dropout_keep_keyed(key, static_cast<uint64_t>(r * cols + j), p) ? scale : 0.0f;
    }
  }
}

// The dropped values of a CSR matrix's rows: one loop per row over its
// entries, the element index in 64-bit lanes (vectorised with the hash).
[[maybe_unused]] void sparse_dropout_loops(const int32_t* indptr, const int32_t* indices, const float* values,
                                           int64_t n_rows, int64_t n_cols, bool transposed, float p, float scale,
                                           uint64_t key, float* out, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t e0 = indptr[r], e1 = indptr[r + 1];
    if (transposed) {
      // Entry (r, col) of Xᵀ is element (col, r) of X.
      for (int64_t e = e0; e < e1; ++e) {
        const uint64_t element = static_cast<uint64_t>(indices[e]) * static_cast<uint64_t>(n_rows) + r;
        out[e] = values[e] * (gcn::dropout_keep_keyed(key, element, p) ? scale : 0.0f);
      }
    } else {
      const uint64_t row = static_cast<uint64_t>(r * n_cols);
      for (int64_t e = e0; e < e1; ++e) {
        const uint64_t element = row + static_cast<uint64_t>(indices[e]);
        out[e] = values[e] * (gcn::dropout_keep_keyed(key, element, p) ? scale : 0.0f);
      }
    }
  }
}

// ---- the portable loops -------------------------------------------------------

// s_src[i, kh] = Σ_c att_src[kh, c] · xw[i, kh, c] (and s_dst) of the
// nodes [i0, i1).
[[maybe_unused]] void gat_scores_loops(const GatShape& d, const float* xw, const float* att_src, const float* att_dst,
                                       float* s_src, float* s_dst, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; ++i) {
    for (int64_t kh = 0; kh < d.bh; ++kh) {
      const float* x = xw + i * d.ld + kh * d.ch;
      const float* as = att_src + kh * d.ch;
      const float* ad = att_dst + kh * d.ch;
      float ss = 0.0f, sd = 0.0f;
      for (int64_t c = 0; c < d.ch; ++c) {
        ss += as[c] * x[c];
        sd += ad[c] * x[c];
      }
      s_src[i * d.bh + kh] = ss;
      s_dst[i * d.bh + kh] = sd;
    }
  }
}

// alpha (E, bh) of the edges into the nodes [i0, i1): the softmax over each
// node's in-edges of leaky_relu(s_src[src] + s_dst[i]), max-subtracted.
[[maybe_unused]] void gat_softmax_loops(const GatShape& g, const float* s_src, const float* s_dst, float* alpha,
                                        int64_t i0, int64_t i1) {
  std::vector<float> mx(static_cast<std::size_t>(g.bh)), sum(static_cast<std::size_t>(g.bh));
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t e0 = g.in_ptr[i], e1 = g.in_ptr[i + 1];
    const float* sd = s_dst + i * g.bh;
    std::fill(mx.begin(), mx.end(), -INFINITY);
    std::fill(sum.begin(), sum.end(), 0.0f);
    // The scores (into alpha) and their maximum.
    for (int64_t e = e0; e < e1; ++e) {
      const float* ss = s_src + static_cast<int64_t>(g.in_src[e]) * g.bh;
      float* z = alpha + e * g.bh;
      for (int64_t kh = 0; kh < g.bh; ++kh) {
        z[kh] = gat_leaky_relu(ss[kh] + sd[kh]);
        mx[kh] = max_ignoring_nan(mx[kh], z[kh]);
      }
    }
    for (int64_t e = e0; e < e1; ++e) {
      float* a = alpha + e * g.bh;
      for (int64_t kh = 0; kh < g.bh; ++kh) a[kh] = softmax_exp(a[kh] - mx[kh]);
      for (int64_t kh = 0; kh < g.bh; ++kh) sum[kh] += a[kh];
    }
    for (int64_t e = e0; e < e1; ++e) {
      float* a = alpha + e * g.bh;
      for (int64_t kh = 0; kh < g.bh; ++kh) a[kh] = a[kh] / sum[kh];
    }
  }
}

// The dropped coefficients of edge e (bh): alpha times the mask's factor.
inline void gat_dropped_row(const GatShape& d, const float* alpha, const float* mask, int64_t e, float* a) {
  const float* row = alpha + e * d.bh;
  if (mask == nullptr) {
    std::copy(row, row + d.bh, a);
    return;
  }
  for (int64_t kh = 0; kh < d.bh; ++kh) a[kh] = row[kh] * mask[e * d.bh + kh];
}

// out rows [i0, i1) = Σ over in-edges, in edge order, of drop(alpha) ·
// xw[src] (+ bias).
[[maybe_unused]] void gat_aggregate_loops(const GatShape& g, const float* alpha, const float* mask, const float* xw,
                                          const float* bias, float* out, int64_t i0, int64_t i1) {
  std::vector<float> a(static_cast<std::size_t>(g.bh));
  for (int64_t i = i0; i < i1; ++i) {
    float* o = out + i * g.ld;
    std::memset(o, 0, static_cast<std::size_t>(g.ld) * sizeof(float));
    for (int64_t e = g.in_ptr[i], e1 = g.in_ptr[i + 1]; e < e1; ++e) {
      gat_dropped_row(g, alpha, mask, e, a.data());
      const float* x = xw + static_cast<int64_t>(g.in_src[e]) * g.ld;
      for (int64_t kh = 0; kh < g.bh; ++kh) {
        for (int64_t c = 0; c < g.ch; ++c) o[kh * g.ch + c] += a[kh] * x[kh * g.ch + c];
      }
    }
    if (bias != nullptr) {
      for (int64_t q = 0; q < g.ld; ++q) o[q] += bias[q];
    }
  }
}

// dots[e, kh] = Σ_c dout[dst(e), kh, c] · xw[src(e), kh, c] for the edges
// into the nodes [i0, i1).
[[maybe_unused]] void gat_edge_dots_loops(const GatShape& g, const float* dout, const float* xw, float* dots,
                                          int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; ++i) {
    const float* go = dout + i * g.ld;
    for (int64_t e = g.in_ptr[i], e1 = g.in_ptr[i + 1]; e < e1; ++e) {
      const float* x = xw + static_cast<int64_t>(g.in_src[e]) * g.ld;
      float* da = dots + e * g.bh;
      for (int64_t kh = 0; kh < g.bh; ++kh) {
        float dot = 0.0f;
        for (int64_t c = 0; c < g.ch; ++c) dot += go[kh * g.ch + c] * x[kh * g.ch + c];
        da[kh] = dot;
      }
    }
  }
}

// The backward through the softmax, per target node i of [i0, i1), from the
// dots of gat_edge_dots:
//   dalpha_e = mask_e · dot_e
//   du_e = alpha_e · (dalpha_e - Σ_e' alpha_e' · dalpha_e') · leaky_relu'(u_e)
// into d_alpha, and ds_dst[i] = Σ_e du_e.
[[maybe_unused]] void gat_softmax_backward_loops(const GatShape& g, const float* s_src, const float* s_dst,
                                                 const float* alpha, const float* mask, const float* dots,
                                                 float* d_alpha, float* ds_dst, int64_t i0, int64_t i1) {
  std::vector<float> t(static_cast<std::size_t>(g.bh));
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t e0 = g.in_ptr[i], e1 = g.in_ptr[i + 1];
    std::fill(t.begin(), t.end(), 0.0f);
    for (int64_t e = e0; e < e1; ++e) {
      float* da = d_alpha + e * g.bh;
      const float* a = alpha + e * g.bh;
      std::copy(dots + e * g.bh, dots + (e + 1) * g.bh, da);
      if (mask != nullptr) {
        for (int64_t kh = 0; kh < g.bh; ++kh) da[kh] = da[kh] * mask[e * g.bh + kh];
      }
      for (int64_t kh = 0; kh < g.bh; ++kh) t[kh] += a[kh] * da[kh];
    }
    const float* sd = s_dst + i * g.bh;
    float* ds = ds_dst + i * g.bh;
    std::fill(ds, ds + g.bh, 0.0f);
    for (int64_t e = e0; e < e1; ++e) {
      const float* ss = s_src + static_cast<int64_t>(g.in_src[e]) * g.bh;
      float* da = d_alpha + e * g.bh;
      const float* a = alpha + e * g.bh;
      for (int64_t kh = 0; kh < g.bh; ++kh) {
        const float u = ss[kh] + sd[kh];
        const float dz = a[kh] * (da[kh] - t[kh]);
        da[kh] = dz * (u > 0.0f ? 1.0f : kGatNegativeSlope);
        ds[kh] += da[kh];
      }
    }
  }
}

// Per source node j of [j0, j1), over its out-edges in out_edge order:
//   ds_src[j] = Σ du_e
//   dxw[j, c] = Σ drop(alpha_e) · dout[dst(e), c] + ds_src[j] · att_src[c] + ds_dst[j] · att_dst[c]
[[maybe_unused]] void gat_backward_sources_loops(const GatShape& g, const float* dout, const float* att_src,
                                                 const float* att_dst, const float* alpha, const float* mask,
                                                 const float* d_alpha, const float* ds_dst, float* ds_src, float* dxw,
                                                 int64_t j0, int64_t j1) {
  std::vector<float> a(static_cast<std::size_t>(g.bh));
  for (int64_t j = j0; j < j1; ++j) {
    float* dx = dxw + j * g.ld;
    float* ds = ds_src + j * g.bh;
    std::memset(dx, 0, static_cast<std::size_t>(g.ld) * sizeof(float));
    std::fill(ds, ds + g.bh, 0.0f);
    for (int64_t q = g.out_ptr[j], q1 = g.out_ptr[j + 1]; q < q1; ++q) {
      const int64_t e = g.out_edge[q];
      const float* du = d_alpha + e * g.bh;
      for (int64_t kh = 0; kh < g.bh; ++kh) ds[kh] += du[kh];
      gat_dropped_row(g, alpha, mask, e, a.data());
      const float* go = dout + static_cast<int64_t>(g.edge_dst[e]) * g.ld;
      for (int64_t kh = 0; kh < g.bh; ++kh) {
        for (int64_t c = 0; c < g.ch; ++c) dx[kh * g.ch + c] += a[kh] * go[kh * g.ch + c];
      }
    }
    const float* dd = ds_dst + j * g.bh;
    for (int64_t kh = 0; kh < g.bh; ++kh) {
      for (int64_t c = 0; c < g.ch; ++c) {
        const int64_t q = kh * g.ch + c;
        dx[q] = (dx[q] + ds[kh] * att_src[q]) + dd[kh] * att_dst[q];
      }
    }
  }
}

// d_att[q] = Σ over the nodes, in order, of ds[j, head(q)] · xw[j, q], in
// double (acc: ld doubles).
[[maybe_unused]] void gat_attention_grad_loops(const GatShape& g, int64_t n_nodes, const float* ds, const float* xw,
                                               float* d_att, double* acc) {
  std::fill(acc, acc + g.ld, 0.0);
  for (int64_t j = 0; j < n_nodes; ++j) {
    const float* x = xw + j * g.ld;
    const float* s = ds + j * g.bh;
    for (int64_t kh = 0; kh < g.bh; ++kh) {
      const double sk = s[kh];
      double* a = acc + kh * g.ch;
      for (int64_t c = 0; c < g.ch; ++c) a[c] += sk * static_cast<double>(x[kh * g.ch + c]);
    }
  }
  for (int64_t q = 0; q < g.ld; ++q) d_att[q] = static_cast<float>(acc[q]);
}

#if defined(__AVX512F__)
// ---- AVX-512: the same operations, 16 lanes at a time -----------------------------

// The first n lanes (none for n <= 0).
inline __mmask16 first_lanes(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : n <= 0 ? 0 : static_cast<__mmask16>((1u << n) - 1u);
}

// (The maskz_ forms of the intrinsics here and below with every lane set:
// the plain forms pass GCC 12 an undefined vector that -Wuninitialized
// reports.)
constexpr __mmask16 kAll16 = 0xFFFF;
constexpr __mmask8 kAll8 = 0xFF;

// The head coefficients of a group of kR column registers (16 columns
// each, from column q0): lane j of register r takes coef[(q0 + 16 r + j) /
// ch] from a row of bh head coefficients, by a masked load of the heads the
// register spans and a permute. one_load: the group's heads fit one
// register (every group of a row of up to 16 heads, and of ch >= 5), so a
// row is loaded once for all kR registers.
template <int kR>
struct GroupHeads {
  bool one_load;
  int64_t first[kR];   // the first head loaded for register r (one_load: the group's)
  __mmask16 load[kR];  // the heads first[r] + t that exist (< bh)
  __m512i lane[kR];    // lane j: its head - first[r]
};

template <int kR>
GroupHeads<kR> group_heads(int64_t q0, int64_t ld, int64_t ch, int64_t bh) {
  GroupHeads<kR> h;
  const int64_t last = std::min(q0 + 16 * kR, ld) - 1;
  h.one_load = last / ch - q0 / ch < 16;
  for (int r = 0; r < kR; ++r) {
    h.first[r] = h.one_load ? q0 / ch : (q0 + 16 * r) / ch;
    h.load[r] = first_lanes(bh - h.first[r]);
    alignas(64) int32_t lane[16];
    // (Columns past ld: any lane, masked off where used.)
    for (int j = 0; j < 16; ++j) {
      lane[j] = static_cast<int32_t>(std::min<int64_t>((q0 + 16 * r + j) / ch - h.first[r], 15));
    }
    h.lane[r] = _mm512_load_si512(lane);
  }
  return h;
}

// out[r] = the group's registers spread from the row at rows + offset
// (times the row at mask + offset, lane by lane, when kTimes: a product per
// head, the same wherever it is spread).
template <bool kOneLoad, bool kTimes, int kR>
inline void spread_row(const GroupHeads<kR>& h, const float* rows, const float* mask, int64_t offset,
                       __m512 (&out)[kR]) {
  auto load = [&](int r) {
    __m512 v = _mm512_maskz_loadu_ps(h.load[r], rows + offset + h.first[r]);
    if constexpr (kTimes) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(h.load[r], mask + offset + h.first[r]));
    return v;
  };
  if constexpr (kOneLoad) {
    const __m512 v = load(0);
    for (int r = 0; r < kR; ++r) out[r] = _mm512_maskz_permutexvar_ps(kAll16, h.lane[r], v);
  } else {
    for (int r = 0; r < kR; ++r) out[r] = _mm512_maskz_permutexvar_ps(kAll16, h.lane[r], load(r));
  }
}

// Stores the first n (0..16) lanes of v at p by plain stores of 8, 4, 2 and
// 1 floats: unlike a masked store's, their bytes are only those n floats,
// so a load of what follows them right after does not wait for them.
inline void store_first(float* p, __m512 v, int64_t n) {
  if (n >= 16) {
    _mm512_storeu_ps(p, v);
    return;
  }
  __m256 half = _mm512_maskz_extractf32x8_ps(kAll8, v, 0);
  if (n & 8) {
    _mm256_storeu_ps(p, half);
    p += 8;
    half = _mm512_maskz_extractf32x8_ps(kAll8, v, 1);
  }
  __m128 quarter = _mm256_maskz_extractf32x4_ps(0xF, half, 0);
  if (n & 4) {
    _mm_storeu_ps(p, quarter);
    p += 4;
    quarter = _mm256_maskz_extractf32x4_ps(0xF, half, 1);
  }
  if (n & 2) {
    _mm_storel_pi(reinterpret_cast<__m64*>(p), quarter);
    p += 2;
    quarter = _mm_movehl_ps(quarter, quarter);
  }
  if (n & 1) _mm_store_ss(p, quarter);
}

// fn(one_load, drop) with both as std::bool_constant (the inner loops
// compiled for each).
template <typename Fn>
void with_flags(bool one_load, bool drop, Fn&& fn) {
  if (one_load) {
    if (drop) {
      fn(std::true_type{}, std::true_type{});
    } else {
      fn(std::true_type{}, std::false_type{});
    }
  } else if (drop) {
    fn(std::false_type{}, std::true_type{});
  } else {
    fn(std::false_type{}, std::false_type{});
  }
}

// fn(q0, regs) over a row's ld columns in groups of up to 64 (regs: 1..4
// registers of 16, a std::integral_constant), the accumulators of a group
// kept in registers over a node's edges.
template <typename Fn>
void for_column_groups(int64_t ld, Fn&& fn) {
  for (int64_t q0 = 0; q0 < ld; q0 += 64) {
    const int64_t left = ld - q0;
    if (left > 48) {
      fn(q0, std::integral_constant<int, 4>{});
    } else if (left > 32) {
      fn(q0, std::integral_constant<int, 3>{});
    } else if (left > 16) {
      fn(q0, std::integral_constant<int, 2>{});
    } else {
      fn(q0, std::integral_constant<int, 1>{});
    }
  }
}

// The channel sums of a block of heads: the heads [h0, h0 + nh) whose
// products (nh · ch <= 64 of them) fill kR registers p; lane t of the result
// = Σ_c p[t · ch + c] in channel order from 0 (lanes >= nh: anything). Step c
// adds channel c of every head at once, picked from the registers by
// permutes (lane t's index t · ch + c selects p[index / 16][index % 16]).
template <int kR>
inline __m512 head_sums(const __m512 (&p)[kR], int64_t ch, __m512i index) {
  const __m512i one = _mm512_set1_epi32(1), upper = _mm512_set1_epi32(32);
  __m512 s = _mm512_setzero_ps();
  for (int64_t c = 0; c < ch; ++c) {
    __m512 v;
    if constexpr (kR == 1) {
      v = _mm512_maskz_permutexvar_ps(kAll16, index, p[0]);
    } else if constexpr (kR == 2) {
      v = _mm512_permutex2var_ps(p[0], index, p[1]);
    } else {
      const __m512 lo = _mm512_permutex2var_ps(p[0], index, p[1]);
      const __m512 hi = _mm512_permutex2var_ps(p[2], index, p[kR - 1]);
      v = _mm512_mask_blend_ps(_mm512_cmpge_epi32_mask(index, upper), lo, hi);
    }
    s = _mm512_add_ps(s, v);
    index = _mm512_add_epi32(index, one);
  }
  return s;
}

// fn(h0, nh, q0, cols, regs) over the head blocks of a row for head_sums: nh
// heads (up to 16, and up to 64 columns: cols = nh · ch from column q0 =
// h0 · ch) in regs (1..4, a std::integral_constant) registers. ch <= 64.
template <typename Fn>
void for_head_blocks(int64_t bh, int64_t ch, Fn&& fn) {
  const int64_t per_block = std::min<int64_t>(16, 64 / ch);
  for (int64_t h0 = 0; h0 < bh; h0 += per_block) {
    const int64_t nh = std::min(per_block, bh - h0), cols = nh * ch;
    if (cols > 48) {
      fn(h0, nh, h0 * ch, cols, std::integral_constant<int, 4>{});
    } else if (cols > 32) {
      fn(h0, nh, h0 * ch, cols, std::integral_constant<int, 3>{});
    } else if (cols > 16) {
      fn(h0, nh, h0 * ch, cols, std::integral_constant<int, 2>{});
    } else {
      fn(h0, nh, h0 * ch, cols, std::integral_constant<int, 1>{});
    }
  }
}

// Lane t: t · ch, the first index of head t's products.
inline __m512i head_starts(int64_t ch) {
  return _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                            _mm512_set1_epi32(static_cast<int32_t>(ch)));
}

// leaky_relu lane by lane (the same select).
inline __m512 leaky_relu16(__m512 u) {
  const __mmask16 positive = _mm512_cmp_ps_mask(u, _mm512_setzero_ps(), _CMP_GT_OQ);
  return _mm512_mask_blend_ps(positive, _mm512_mul_ps(_mm512_set1_ps(kGatNegativeSlope), u), u);
}

// mx = max_ignoring_nan(mx, z) lane by lane, for a running maximum from
// -inf: such an mx is never NaN, so this is mx > z ? mx : z with a NaN z
// first made -inf (then mx stays, -inf included), and vmaxps is exactly
// mx > z ? mx : z (z when equal, as ±0). One instruction on the loop's
// dependency chain instead of a compare and three selects.
inline __m512 running_max16(__m512 mx, __m512 z) {
  const __m512 z_number = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(z, z, _CMP_UNORD_Q), z, _mm512_set1_ps(-INFINITY));
  return _mm512_maskz_max_ps(kAll16, mx, z_number);
}

// softmax_exp of 8 floats, in double lanes: the same operations.
inline __m256 exp8(__m256 x) {
  namespace c = glibc_expf;
  const __m512i* table = reinterpret_cast<const __m512i*>(c::kTable);
  const __m512d xd = _mm512_maskz_cvtps_pd(kAll8, x);
  const __m512d inv_ln2n = _mm512_set1_pd(c::kInvLn2N), shift = _mm512_set1_pd(c::kShift);
  const __m512d z = _mm512_fmadd_pd(inv_ln2n, xd, shift);
  const __m512i ki = _mm512_castpd_si512(z);
  const __m512d kd = _mm512_sub_pd(z, shift);
  const __m512d r = _mm512_fmsub_pd(inv_ln2n, xd, kd);
  // kTable[ki % 32]: entries 0..15 or 16..31 by bit 4, each pair of
  // registers indexed by bits 0..3.
  const __m512i low = _mm512_permutex2var_epi64(_mm512_loadu_si512(table), ki, _mm512_loadu_si512(table + 1));
  const __m512i high = _mm512_permutex2var_epi64(_mm512_loadu_si512(table + 2), ki, _mm512_loadu_si512(table + 3));
  const __m512i entry = _mm512_mask_blend_epi64(_mm512_test_epi64_mask(ki, _mm512_set1_epi64(16)), low, high);
  const __m512d s = _mm512_castsi512_pd(_mm512_add_epi64(entry, _mm512_maskz_slli_epi64(kAll8, ki, 47)));
  const __m512d p = _mm512_fmadd_pd(_mm512_set1_pd(c::kC0), r, _mm512_set1_pd(c::kC1));
  const __m512d r2 = _mm512_mul_pd(r, r);
  __m512d y = _mm512_fmadd_pd(r, _mm512_set1_pd(c::kC2), _mm512_set1_pd(1.0));
  y = _mm512_fmadd_pd(p, r2, y);
  return _mm512_maskz_cvtpd_ps(kAll8, _mm512_mul_pd(y, s));
}

// softmax_exp of 16 floats; lanes with |x| >= 88 or NaN one by one.
inline __m512 exp16(__m512 x) {
  const __m256 lo = exp8(_mm512_maskz_extractf32x8_ps(kAll8, x, 0));
  const __m256 hi = exp8(_mm512_maskz_extractf32x8_ps(kAll8, x, 1));
  __m512 y = _mm512_maskz_insertf32x8(kAll16, _mm512_maskz_insertf32x8(kAll16, _mm512_setzero_ps(), lo, 0), hi, 1);
  const __m512i top =
      _mm512_and_si512(_mm512_maskz_srli_epi32(kAll16, _mm512_castps_si512(x), 20), _mm512_set1_epi32(0x7ff));
  const __mmask16 special =
      _mm512_cmpge_epu32_mask(top, _mm512_set1_epi32(static_cast<int32_t>(glibc_expf::kSpecialTop)));
  if (special != 0) {
    alignas(64) float v[16], out[16];
    _mm512_store_ps(v, x);
    _mm512_store_ps(out, y);
    for (int t = 0; t < 16; ++t) {
      if ((special >> t) & 1) out[t] = softmax_exp(v[t]);
    }
    y = _mm512_load_ps(out);
  }
  return y;
}

void softmax_exp_floats(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = first_lanes(n - i);
    _mm512_mask_storeu_ps(y + i, m, exp16(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

// ---- the dropout masks, 8 indices at a time (64-bit lanes) ----

typedef uint64_t u64x8 __attribute__((vector_size(64)));
typedef int64_t i64x8 __attribute__((vector_size(64)));
typedef int32_t i32x8 __attribute__((vector_size(32)));

// dropout_keep_keyed of 8 indices: mix64 and the comparison, the same
// integer and float operations lane by lane (vpmullq for the products).
inline __mmask8 keep8(uint64_t key, u64x8 index, float p) {
  u64x8 z = key + index;
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  const f8 u = __builtin_convertvector(__builtin_convertvector(z >> 40, i32x8), f8) * (1.0f / 16777216.0f);
  return _mm256_cmp_ps_mask(reinterpret_cast<__m256>(u), _mm256_set1_ps(p), _CMP_GE_OQ);
}

inline __mmask8 first_lanes8(int64_t n) {
  return n >= 8 ? static_cast<__mmask8>(0xFF) : n <= 0 ? 0 : static_cast<__mmask8>((1u << n) - 1u);
}

const u64x8 kLanes8 = {0, 1, 2, 3, 4, 5, 6, 7};

void dropout_factors(float* m, int64_t ld, int64_t cols, int64_t r0, int64_t r1, float p, float scale, uint64_t key) {
  const __m256 kept = _mm256_set1_ps(scale);
  // Elements [q0, q1) of the tensor, the first at out.
  auto run = [&](int64_t q0, int64_t q1, float* out) {
    for (int64_t q = q0; q < q1; q += 8) {
      const __mmask8 keep = keep8(key, static_cast<uint64_t>(q) + kLanes8, p);
      _mm256_mask_storeu_ps(out + (q - q0), first_lanes8(q1 - q), _mm256_maskz_mov_ps(keep, kept));
    }
  };
  if (ld == cols) {
    run(r0 * cols, r1 * cols, m + r0 * cols);
    return;
  }
  for (int64_t r = r0; r < r1; ++r) run(r * cols, (r + 1) * cols, m + r * ld);
}

void sparse_dropout(const int32_t* indptr, const int32_t* indices, const float* values, int64_t n_rows, int64_t n_cols,
                    bool transposed, float p, float scale, uint64_t key, float* out, int64_t r0, int64_t r1) {
  const __m256 kept = _mm256_set1_ps(scale);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t e1 = indptr[r + 1];
    for (int64_t e = indptr[r]; e < e1; e += 8) {
      const __mmask8 m = first_lanes8(e1 - e);
      const i32x8 col32 = reinterpret_cast<i32x8>(_mm256_maskz_loadu_epi32(m, indices + e));
      const u64x8 col = reinterpret_cast<u64x8>(__builtin_convertvector(col32, i64x8));
      // The element of the matrix dropped: a's own, or (transposed) its transpose's.
      const u64x8 element = transposed ? col * static_cast<uint64_t>(n_rows) + static_cast<uint64_t>(r)
                                       : static_cast<uint64_t>(r * n_cols) + col;
      const __m256 factor = _mm256_maskz_mov_ps(keep8(key, element, p), kept);
      _mm256_mask_storeu_ps(out + e, m, _mm256_mul_ps(_mm256_maskz_loadu_ps(m, values + e), factor));
    }
  }
}

void gat_scores(const GatShape& d, const float* xw, const float* att_src, const float* att_dst, float* s_src,
                float* s_dst, int64_t i0, int64_t i1) {
  if (d.ch > 64) {
    gat_scores_loops(d, xw, att_src, att_dst, s_src, s_dst, i0, i1);
    return;
  }
  for_head_blocks(d.bh, d.ch, [&](int64_t h0, int64_t nh, int64_t q0, int64_t cols, auto regs) {
    constexpr int kR = decltype(regs)::value;
    __mmask16 in[kR];
    __m512 as[kR], ad[kR];
    for (int r = 0; r < kR; ++r) {
      in[r] = first_lanes(cols - 16 * r);
      as[r] = _mm512_maskz_loadu_ps(in[r], att_src + q0 + 16 * r);
      ad[r] = _mm512_maskz_loadu_ps(in[r], att_dst + q0 + 16 * r);
    }
    const __m512i starts = head_starts(d.ch);
    const __mmask16 out = first_lanes(nh);
    for (int64_t i = i0; i < i1; ++i) {
      const float* x = xw + i * d.ld + q0;
      __m512 ps[kR], pd[kR];
      for (int r = 0; r < kR; ++r) {
        const __m512 xv = _mm512_maskz_loadu_ps(in[r], x + 16 * r);
        ps[r] = _mm512_mul_ps(as[r], xv);
        pd[r] = _mm512_mul_ps(ad[r], xv);
      }
      _mm512_mask_storeu_ps(s_src + i * d.bh + h0, out, head_sums<kR>(ps, d.ch, starts));
      _mm512_mask_storeu_ps(s_dst + i * d.bh + h0, out, head_sums<kR>(pd, d.ch, starts));
    }
  });
}

// Three sweeps. Per node, heads as lanes (16 at a time): the scores, their
// maximum, and the scores less it into alpha. Then exp over the range's
// coefficients at once: the edges into consecutive nodes are consecutive
// rows of alpha, so every lane is used whatever the number of heads. Per
// node again: the sums over the edges in edge order, and the division (for
// up to 16 heads over the node's rows as one block, a lane's head being its
// index mod bh).
void gat_softmax(const GatShape& g, const float* s_src, const float* s_dst, float* alpha, int64_t i0, int64_t i1) {
  for (int64_t h0 = 0; h0 < g.bh; h0 += 16) {
    const __mmask16 m = first_lanes(g.bh - h0);
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t e0 = g.in_ptr[i], e1 = g.in_ptr[i + 1];
      const __m512 sd = _mm512_maskz_loadu_ps(m, s_dst + i * g.bh + h0);
      // (The scores computed twice rather than stored and read back: a
      // masked store does not forward to a load.)
      auto score = [&](int64_t e) {
        const __m512 ss = _mm512_maskz_loadu_ps(m, s_src + static_cast<int64_t>(g.in_src[e]) * g.bh + h0);
        return leaky_relu16(_mm512_add_ps(ss, sd));
      };
      __m512 mx = _mm512_set1_ps(-INFINITY);
      for (int64_t e = e0; e < e1; ++e) mx = running_max16(mx, score(e));
      for (int64_t e = e0; e < e1; ++e) _mm512_mask_storeu_ps(alpha + e * g.bh + h0, m, _mm512_sub_ps(score(e), mx));
    }
  }
  const int64_t q0 = g.in_ptr[i0] * g.bh;
  softmax_exp_floats(alpha + q0, alpha + q0, g.in_ptr[i1] * g.bh - q0);
  // A lane's head in a node's block of rows: (offset + lane) mod bh, the
  // offset advancing by 16 (mod bh) a register at a time.
  alignas(64) int32_t lane_head[16];
  for (int j = 0; j < 16; ++j) lane_head[j] = static_cast<int32_t>(j % g.bh);
  const __m512i first_heads = _mm512_load_si512(lane_head);
  const __m512i step = _mm512_set1_epi32(static_cast<int32_t>(16 % g.bh));
  const __m512i bh = _mm512_set1_epi32(static_cast<int32_t>(g.bh));
  for (int64_t h0 = 0; h0 < g.bh; h0 += 16) {
    const __mmask16 m = first_lanes(g.bh - h0);
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t e0 = g.in_ptr[i], e1 = g.in_ptr[i + 1];
      __m512 sum = _mm512_setzero_ps();
      for (int64_t e = e0; e < e1; ++e) sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(m, alpha + e * g.bh + h0));
      if (g.bh <= 16) {
        // The node's rows as one block (a masked store per row followed by
        // a load of the next row would stall where they overlap).
        __m512i heads = first_heads;
        for (int64_t q = e0 * g.bh; q < e1 * g.bh; q += 16) {
          const __mmask16 mq = first_lanes(e1 * g.bh - q);
          const __m512 by_lane = _mm512_maskz_permutexvar_ps(kAll16, heads, sum);
          store_first(alpha + q, _mm512_div_ps(_mm512_maskz_loadu_ps(mq, alpha + q), by_lane), e1 * g.bh - q);
          heads = _mm512_add_epi32(heads, step);
          heads = _mm512_mask_sub_epi32(heads, _mm512_cmpge_epi32_mask(heads, bh), heads, bh);
        }
      } else {
        for (int64_t e = e0; e < e1; ++e) {
          float* a = alpha + e * g.bh + h0;
          _mm512_mask_storeu_ps(a, m, _mm512_div_ps(_mm512_maskz_loadu_ps(m, a), sum));
        }
      }
    }
  }
}

// The accumulators of a column group in registers over a node's edges; the
// coefficient of each column spread from its head's (alpha · mask).
void gat_aggregate(const GatShape& g, const float* alpha, const float* mask, const float* xw, const float* bias,
                   float* out, int64_t i0, int64_t i1) {
  const int64_t bh = g.bh, ld = g.ld;
  const int32_t* in_ptr = g.in_ptr;
  const int32_t* in_src = g.in_src;
  for_column_groups(ld, [&](int64_t q0, auto regs) {
    constexpr int kR = decltype(regs)::value;
    const GroupHeads<kR> h = group_heads<kR>(q0, ld, g.ch, bh);
    __mmask16 in[kR];
    for (int r = 0; r < kR; ++r) in[r] = first_lanes(ld - q0 - 16 * r);
    with_flags(h.one_load, mask != nullptr, [&](auto one_load, auto drop) {
      for (int64_t i = i0; i < i1; ++i) {
        __m512 acc[kR];
        for (int r = 0; r < kR; ++r) acc[r] = _mm512_setzero_ps();
        for (int64_t e = in_ptr[i], e1 = in_ptr[i + 1]; e < e1; ++e) {
          const float* x = xw + static_cast<int64_t>(in_src[e]) * ld + q0;
          __m512 a[kR];
          spread_row<one_load, drop>(h, alpha, mask, e * bh, a);
          for (int r = 0; r < kR; ++r) {
            acc[r] = _mm512_add_ps(acc[r], _mm512_mul_ps(a[r], _mm512_maskz_loadu_ps(in[r], x + 16 * r)));
          }
        }
        for (int r = 0; r < kR; ++r) {
          if (bias != nullptr) acc[r] = _mm512_add_ps(acc[r], _mm512_maskz_loadu_ps(in[r], bias + q0 + 16 * r));
          _mm512_mask_storeu_ps(out + i * ld + q0 + 16 * r, in[r], acc[r]);
        }
      }
    });
  });
}

// The dots of gat_edge_dots_loops, a block of heads at a time: the products
// of dout's row (loaded once per node) and each source's.
void gat_edge_dots(const GatShape& g, const float* dout, const float* xw, float* dots, int64_t i0, int64_t i1) {
  if (g.ch > 64) {
    gat_edge_dots_loops(g, dout, xw, dots, i0, i1);
    return;
  }
  for_head_blocks(g.bh, g.ch, [&](int64_t h0, int64_t nh, int64_t q0, int64_t cols, auto regs) {
    constexpr int kR = decltype(regs)::value;
    __mmask16 in[kR];
    for (int r = 0; r < kR; ++r) in[r] = first_lanes(cols - 16 * r);
    const __m512i starts = head_starts(g.ch);
    const __mmask16 out = first_lanes(nh);
    for (int64_t i = i0; i < i1; ++i) {
      __m512 go[kR];
      for (int r = 0; r < kR; ++r) go[r] = _mm512_maskz_loadu_ps(in[r], dout + i * g.ld + q0 + 16 * r);
      for (int64_t e = g.in_ptr[i], e1 = g.in_ptr[i + 1]; e < e1; ++e) {
        const float* x = xw + static_cast<int64_t>(g.in_src[e]) * g.ld + q0;
        __m512 prod[kR];
        for (int r = 0; r < kR; ++r) prod[r] = _mm512_mul_ps(go[r], _mm512_maskz_loadu_ps(in[r], x + 16 * r));
        _mm512_mask_storeu_ps(dots + e * g.bh + h0, out, head_sums<kR>(prod, g.ch, starts));
      }
    }
  });
}

// gat_softmax_backward_loops with heads as lanes, 16 at a time. The dots
// come from their own array, not d_alpha: a load of the next edge's row
// right after a masked store to this one's stalls when the two overlap
// (rows narrower than the 16 lanes), as a masked store does not forward.
void gat_softmax_backward(const GatShape& g, const float* s_src, const float* s_dst, const float* alpha,
                          const float* mask, const float* dots, float* d_alpha, float* ds_dst, int64_t i0, int64_t i1) {
  const __m512 slope = _mm512_set1_ps(kGatNegativeSlope), one = _mm512_set1_ps(1.0f);
  for (int64_t h0 = 0; h0 < g.bh; h0 += 16) {
    const __mmask16 m = first_lanes(g.bh - h0);
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t e0 = g.in_ptr[i], e1 = g.in_ptr[i + 1];
      // dalpha = dot · mask, computed in both passes.
      auto dalpha = [&](int64_t e) {
        const __m512 dot = _mm512_maskz_loadu_ps(m, dots + e * g.bh + h0);
        return mask != nullptr ? _mm512_mul_ps(dot, _mm512_maskz_loadu_ps(m, mask + e * g.bh + h0)) : dot;
      };
      __m512 t = _mm512_setzero_ps();
      for (int64_t e = e0; e < e1; ++e) {
        t = _mm512_add_ps(t, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, alpha + e * g.bh + h0), dalpha(e)));
      }
      const __m512 sd = _mm512_maskz_loadu_ps(m, s_dst + i * g.bh + h0);
      __m512 ds = _mm512_setzero_ps();
      for (int64_t e = e0; e < e1; ++e) {
        const __m512 ss = _mm512_maskz_loadu_ps(m, s_src + static_cast<int64_t>(g.in_src[e]) * g.bh + h0);
        float* da = d_alpha + e * g.bh + h0;
        const __m512 u = _mm512_add_ps(ss, sd);
        const __m512 dz = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, alpha + e * g.bh + h0), _mm512_sub_ps(dalpha(e), t));
        const __m512 factor = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(u, _mm512_setzero_ps(), _CMP_GT_OQ), slope, one);
        const __m512 du = _mm512_mul_ps(dz, factor);
        _mm512_mask_storeu_ps(da, m, du);
        ds = _mm512_add_ps(ds, du);
      }
      _mm512_mask_storeu_ps(ds_dst + i * g.bh + h0, m, ds);
    }
  }
}

void gat_backward_targets(const GatShape& g, const float* dout, const float* xw, const float* s_src, const float* s_dst,
                          const float* alpha, const float* mask, float* dots, float* d_alpha, float* ds_dst, int64_t i0,
                          int64_t i1) {
  gat_edge_dots(g, dout, xw, dots, i0, i1);
  gat_softmax_backward(g, s_src, s_dst, alpha, mask, dots, d_alpha, ds_dst, i0, i1);
}

// ds_src by lanes of heads, then dxw by column groups (the coefficients and
// ds_src, ds_dst spread over the columns).
void gat_backward_sources(const GatShape& g, const float* dout, const float* att_src, const float* att_dst,
                          const float* alpha, const float* mask, const float* d_alpha, const float* ds_dst,
                          float* ds_src, float* dxw, int64_t j0, int64_t j1) {
  for (int64_t h0 = 0; h0 < g.bh; h0 += 16) {
    const __mmask16 m = first_lanes(g.bh - h0);
    for (int64_t j = j0; j < j1; ++j) {
      __m512 ds = _mm512_setzero_ps();
      for (int64_t q = g.out_ptr[j], q1 = g.out_ptr[j + 1]; q < q1; ++q) {
        ds = _mm512_add_ps(ds, _mm512_maskz_loadu_ps(m, d_alpha + static_cast<int64_t>(g.out_edge[q]) * g.bh + h0));
      }
      _mm512_mask_storeu_ps(ds_src + j * g.bh + h0, m, ds);
    }
  }
  const int64_t bh = g.bh, ld = g.ld;
  const int32_t* out_ptr = g.out_ptr;
  const int32_t* out_edge = g.out_edge;
  const int32_t* edge_dst = g.edge_dst;
  for_column_groups(ld, [&](int64_t q0, auto regs) {
    constexpr int kR = decltype(regs)::value;
    const GroupHeads<kR> h = group_heads<kR>(q0, ld, g.ch, bh);
    __mmask16 in[kR];
    __m512 as[kR], ad[kR];
    for (int r = 0; r < kR; ++r) {
      in[r] = first_lanes(ld - q0 - 16 * r);
      as[r] = _mm512_maskz_loadu_ps(in[r], att_src + q0 + 16 * r);
      ad[r] = _mm512_maskz_loadu_ps(in[r], att_dst + q0 + 16 * r);
    }
    with_flags(h.one_load, mask != nullptr, [&](auto one_load, auto drop) {
      for (int64_t j = j0; j < j1; ++j) {
        __m512 acc[kR];
        for (int r = 0; r < kR; ++r) acc[r] = _mm512_setzero_ps();
        for (int64_t q = out_ptr[j], q1 = out_ptr[j + 1]; q < q1; ++q) {
          const int64_t e = out_edge[q];
          const float* go = dout + static_cast<int64_t>(edge_dst[e]) * ld + q0;
          __m512 a[kR];
          spread_row<one_load, drop>(h, alpha, mask, e * bh, a);
          for (int r = 0; r < kR; ++r) {
            acc[r] = _mm512_add_ps(acc[r], _mm512_mul_ps(a[r], _mm512_maskz_loadu_ps(in[r], go + 16 * r)));
          }
        }
        __m512 src[kR], dst[kR];
        spread_row<one_load, false>(h, ds_src, nullptr, j * bh, src);
        spread_row<one_load, false>(h, ds_dst, nullptr, j * bh, dst);
        for (int r = 0; r < kR; ++r) {
          const __m512 with_src = _mm512_add_ps(acc[r], _mm512_mul_ps(src[r], as[r]));
          const __m512 dx = _mm512_add_ps(with_src, _mm512_mul_ps(dst[r], ad[r]));
          _mm512_mask_storeu_ps(dxw + j * ld + q0 + 16 * r, in[r], dx);
        }
      }
    });
  });
}

// Double accumulators in registers, 8 columns each, over the nodes in order.
void gat_attention_grad(const GatShape& g, int64_t n_nodes, const float* ds, const float* xw, float* d_att,
                        double* /*acc*/) {
  for_column_groups(g.ld, [&](int64_t q0, auto regs) {
    constexpr int kR = decltype(regs)::value;
    const GroupHeads<kR> h = group_heads<kR>(q0, g.ld, g.ch, g.bh);
    __mmask16 in[kR];
    for (int r = 0; r < kR; ++r) in[r] = first_lanes(g.ld - q0 - 16 * r);
    __m512d acc[2 * kR];
    for (int r = 0; r < 2 * kR; ++r) acc[r] = _mm512_setzero_pd();
    for (int64_t j = 0; j < n_nodes; ++j) {
      const float* x = xw + j * g.ld + q0;
      __m512 s16[kR];
      if (h.one_load) {
        spread_row<true, false>(h, ds, nullptr, j * g.bh, s16);
      } else {
        spread_row<false, false>(h, ds, nullptr, j * g.bh, s16);
      }
      for (int r = 0; r < kR; ++r) {
        const __m512 xv = _mm512_maskz_loadu_ps(in[r], x + 16 * r);
        const __m512 sv = s16[r];
        // The two halves of the 16 columns as doubles (exact).
        const __m512d x_lo = _mm512_maskz_cvtps_pd(kAll8, _mm512_maskz_extractf32x8_ps(kAll8, xv, 0));
        const __m512d x_hi = _mm512_maskz_cvtps_pd(kAll8, _mm512_maskz_extractf32x8_ps(kAll8, xv, 1));
        const __m512d s_lo = _mm512_maskz_cvtps_pd(kAll8, _mm512_maskz_extractf32x8_ps(kAll8, sv, 0));
        const __m512d s_hi = _mm512_maskz_cvtps_pd(kAll8, _mm512_maskz_extractf32x8_ps(kAll8, sv, 1));
        acc[2 * r] = _mm512_add_pd(acc[2 * r], _mm512_mul_pd(s_lo, x_lo));
        acc[2 * r + 1] = _mm512_add_pd(acc[2 * r + 1], _mm512_mul_pd(s_hi, x_hi));
      }
    }
    for (int r = 0; r < kR; ++r) {
      float* out = d_att + q0 + 16 * r;
      _mm256_mask_storeu_ps(out, static_cast<__mmask8>(in[r]), _mm512_maskz_cvtpd_ps(kAll8, acc[2 * r]));
      _mm256_mask_storeu_ps(out + 8, static_cast<__mmask8>(in[r] >> 8), _mm512_maskz_cvtpd_ps(kAll8, acc[2 * r + 1]));
    }
  });
}

#else  // the portable loops

void dropout_factors(float* m, int64_t ld, int64_t cols, int64_t r0, int64_t r1, float p, float scale, uint64_t key) {
  dropout_factors_loops(m, ld, cols, r0, r1, p, scale, key);
}

void sparse_dropout(const int32_t* indptr, const int32_t* indices, const float* values, int64_t n_rows, int64_t n_cols,
                    bool transposed, float p, float scale, uint64_t key, float* out, int64_t r0, int64_t r1) {
  sparse_dropout_loops(indptr, indices, values, n_rows, n_cols, transposed, p, scale, key, out, r0, r1);
}

void gat_scores(const GatShape& d, const float* xw, const float* att_src, const float* att_dst, float* s_src,
                float* s_dst, int64_t i0, int64_t i1) {
  gat_scores_loops(d, xw, att_src, att_dst, s_src, s_dst, i0, i1);
}

void gat_softmax(const GatShape& g, const float* s_src, const float* s_dst, float* alpha, int64_t i0, int64_t i1) {
  gat_softmax_loops(g, s_src, s_dst, alpha, i0, i1);
}

void softmax_exp_floats(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = softmax_exp(x[i]);
}

void gat_aggregate(const GatShape& g, const float* alpha, const float* mask, const float* xw, const float* bias,
                   float* out, int64_t i0, int64_t i1) {
  gat_aggregate_loops(g, alpha, mask, xw, bias, out, i0, i1);
}

void gat_backward_targets(const GatShape& g, const float* dout, const float* xw, const float* s_src, const float* s_dst,
                          const float* alpha, const float* mask, float* dots, float* d_alpha, float* ds_dst, int64_t i0,
                          int64_t i1) {
  gat_edge_dots_loops(g, dout, xw, dots, i0, i1);
  gat_softmax_backward_loops(g, s_src, s_dst, alpha, mask, dots, d_alpha, ds_dst, i0, i1);
}

void gat_backward_sources(const GatShape& g, const float* dout, const float* att_src, const float* att_dst,
                          const float* alpha, const float* mask, const float* d_alpha, const float* ds_dst,
                          float* ds_src, float* dxw, int64_t j0, int64_t j1) {
  gat_backward_sources_loops(g, dout, att_src, att_dst, alpha, mask, d_alpha, ds_dst, ds_src, dxw, j0, j1);
}

void gat_attention_grad(const GatShape& g, int64_t n_nodes, const float* ds, const float* xw, float* d_att,
                        double* acc) {
  gat_attention_grad_loops(g, n_nodes, ds, xw, d_att, acc);
}

#endif  // __AVX512F__

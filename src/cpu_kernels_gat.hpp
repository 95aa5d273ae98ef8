// The CPU backend's loops for graph attention (GATConv): plain loops over a
// node's edges with every (model, head) of an edge at once (contiguous
// rows), included by cpu_backend.cpp only and compiled with its flags (no
// FMA contraction: every product and sum is two roundings, as the CUDA
// kernels' __fmul_rn / __fadd_rn).
//
// Summation orders, the same as kernels/gat.cu's so that the two backends
// differ only where exp differs: channel sums (the scores, the gradient of
// an attention coefficient) in channel order, float; sums over a node's
// in-edges in edge order, float; sums over a node's out-edges in
// EdgeLists::out_edge order, float; the attention parameters' gradients
// (sums over every node) in node order, in double. Each (node, model, head)
// is computed on its own, so a model's block of a batch has the bits of the
// same model alone, and no result depends on how the nodes are split over
// threads.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "gcn/backend.hpp"
#include "gcn/rng.hpp"

namespace gcn::cpu::gat {

constexpr float kNegativeSlope = 0.2f;  // GATConv's leaky_relu

inline float leaky_relu(float u) { return u > 0.0f ? u : kNegativeSlope * u; }

// fmaxf (a NaN loses to a number; CUDA's too) without the library call.
inline float max_ignoring_nan(float a, float b) {
  if (a != a) return b;
  if (b != b) return a;
  return a > b ? a : b;
}

// The dropout of one batch on the attention coefficients: model k's
// coefficient (e, h) is multiplied by mask(k, e · heads + h).
struct AlphaDropout {
  bool drop = false;
  float p = 0.0f;
  float scale = 1.0f;
  std::vector<uint64_t> keys;  // per model
  // The factor of element `index` of model k: 1 without dropout, else 0 or
  // 1 / (1 - p).
  float mask(int k, uint64_t index) const {
    if (!drop) return 1.0f;
    return dropout_keep_keyed(keys[static_cast<std::size_t>(k)], index, p) ? scale : 0.0f;
  }
};

inline AlphaDropout alpha_dropout(float p, const StepState* steps, uint32_t site, int batch) {
  AlphaDropout d;
  d.drop = p > 0.0f;
  if (!d.drop) return d;
  d.p = p;
  d.scale = 1.0f / (1.0f - p);
  d.keys.resize(static_cast<std::size_t>(batch));
  for (int k = 0; k < batch; ++k) {
    d.keys[static_cast<std::size_t>(k)] =
        stream_key(site_seed(steps[k].dropout_seed, site), static_cast<uint64_t>(steps[k].epoch + 1));
  }
  return d;
}

// The shape of one call: bh = batch · heads columns of scores, ch channels
// per head, ld = bh · ch columns of features.
struct Dims {
  int heads;
  int64_t bh, ch, ld;
};

// s_src, s_dst (N, bh) of the nodes [i0, i1).
inline void scores(const Dims& d, const float* xw, const float* att_src, const float* att_dst,
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
inline void softmax(const EdgeLists& g, const Dims& d, const float* s_src, const float* s_dst, float* alpha,
                    int64_t i0, int64_t i1) {
  std::vector<float> mx(static_cast<std::size_t>(d.bh)), sum(static_cast<std::size_t>(d.bh));
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t e0 = g.in_ptr[i], e1 = g.in_ptr[i + 1];
    const float* sd = s_dst + i * d.bh;
    std::fill(mx.begin(), mx.end(), -INFINITY);
    std::fill(sum.begin(), sum.end(), 0.0f);
    // The scores (into alpha) and their maximum.
    for (int64_t e = e0; e < e1; ++e) {
      const float* ss = s_src + static_cast<int64_t>(g.in_src[e]) * d.bh;
      float* z = alpha + e * d.bh;
      for (int64_t kh = 0; kh < d.bh; ++kh) {
        z[kh] = leaky_relu(ss[kh] + sd[kh]);
        mx[kh] = max_ignoring_nan(mx[kh], z[kh]);
      }
    }
    for (int64_t e = e0; e < e1; ++e) {
      float* a = alpha + e * d.bh;
      for (int64_t kh = 0; kh < d.bh; ++kh) a[kh] = std::exp(a[kh] - mx[kh]);
      for (int64_t kh = 0; kh < d.bh; ++kh) sum[kh] += a[kh];
    }
    for (int64_t e = e0; e < e1; ++e) {
      float* a = alpha + e * d.bh;
      for (int64_t kh = 0; kh < d.bh; ++kh) a[kh] = a[kh] / sum[kh];
    }
  }
}

// The dropped coefficients of edge e (bh): alpha times the mask factor.
inline void dropped_row(const Dims& d, const float* alpha, const AlphaDropout& drop, int64_t e, float* a) {
  const float* row = alpha + e * d.bh;
  if (!drop.drop) {
    std::copy(row, row + d.bh, a);
    return;
  }
  for (int64_t k = 0, kh = 0; kh < d.bh; ++k) {
    for (int h = 0; h < d.heads; ++h, ++kh) a[kh] = row[kh] * drop.mask(static_cast<int>(k), static_cast<uint64_t>(e * d.heads + h));
  }
}

// out rows [i0, i1) = Σ over in-edges, in edge order, of drop(alpha) ·
// xw[src] (+ bias).
inline void aggregate(const EdgeLists& g, const Dims& d, const float* alpha, const float* xw, const float* bias,
                      float* out, const AlphaDropout& drop, int64_t i0, int64_t i1) {
  std::vector<float> a(static_cast<std::size_t>(d.bh));
  for (int64_t i = i0; i < i1; ++i) {
    float* o = out + i * d.ld;
    std::memset(o, 0, static_cast<std::size_t>(d.ld) * sizeof(float));
    for (int64_t e = g.in_ptr[i], e1 = g.in_ptr[i + 1]; e < e1; ++e) {
      dropped_row(d, alpha, drop, e, a.data());
      const float* x = xw + static_cast<int64_t>(g.in_src[e]) * d.ld;
      for (int64_t kh = 0; kh < d.bh; ++kh) {
        for (int64_t c = 0; c < d.ch; ++c) o[kh * d.ch + c] += a[kh] * x[kh * d.ch + c];
      }
    }
    if (bias != nullptr) {
      for (int64_t q = 0; q < d.ld; ++q) o[q] += bias[q];
    }
  }
}

// The backward through the softmax, per target node i of [i0, i1):
//   dalpha_e = mask_e · Σ_c dout[i, c] · xw[src(e), c]
//   du_e = alpha_e · (dalpha_e - Σ_e' alpha_e' · dalpha_e') · leaky_relu'(u_e)
// into d_alpha (E, bh), and ds_dst[i] = Σ_e du_e.
inline void backward_targets(const EdgeLists& g, const Dims& d, const float* dout, const float* xw,
                             const float* s_src, const float* s_dst, const float* alpha, const AlphaDropout& drop,
                             float* d_alpha, float* ds_dst, int64_t i0, int64_t i1) {
  std::vector<float> t(static_cast<std::size_t>(d.bh));
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t e0 = g.in_ptr[i], e1 = g.in_ptr[i + 1];
    const float* go = dout + i * d.ld;
    std::fill(t.begin(), t.end(), 0.0f);
    for (int64_t e = e0; e < e1; ++e) {
      const float* x = xw + static_cast<int64_t>(g.in_src[e]) * d.ld;
      float* da = d_alpha + e * d.bh;
      const float* a = alpha + e * d.bh;
      for (int64_t kh = 0; kh < d.bh; ++kh) {
        float dot = 0.0f;
        for (int64_t c = 0; c < d.ch; ++c) dot += go[kh * d.ch + c] * x[kh * d.ch + c];
        da[kh] = dot;
      }
      if (drop.drop) {
        for (int64_t k = 0, kh = 0; kh < d.bh; ++k) {
          for (int h = 0; h < d.heads; ++h, ++kh) {
            da[kh] = da[kh] * drop.mask(static_cast<int>(k), static_cast<uint64_t>(e * d.heads + h));
          }
        }
      }
      for (int64_t kh = 0; kh < d.bh; ++kh) t[kh] += a[kh] * da[kh];
    }
    const float* sd = s_dst + i * d.bh;
    float* ds = ds_dst + i * d.bh;
    std::fill(ds, ds + d.bh, 0.0f);
    for (int64_t e = e0; e < e1; ++e) {
      const float* ss = s_src + static_cast<int64_t>(g.in_src[e]) * d.bh;
      float* da = d_alpha + e * d.bh;
      const float* a = alpha + e * d.bh;
      for (int64_t kh = 0; kh < d.bh; ++kh) {
        const float u = ss[kh] + sd[kh];
        const float dz = a[kh] * (da[kh] - t[kh]);
        da[kh] = dz * (u > 0.0f ? 1.0f : kNegativeSlope);
        ds[kh] += da[kh];
      }
    }
  }
}

// Per source node j of [j0, j1), over its out-edges in out_edge order:
//   ds_src[j] = Σ du_e
//   dxw[j, c] = Σ drop(alpha_e) · dout[dst(e), c] + ds_src[j] · att_src[c] + ds_dst[j] · att_dst[c]
inline void backward_sources(const EdgeLists& g, const Dims& d, const float* dout, const float* att_src,
                             const float* att_dst, const float* alpha, const AlphaDropout& drop, const float* d_alpha,
                             const float* ds_dst, float* ds_src, float* dxw, int64_t j0, int64_t j1) {
  std::vector<float> a(static_cast<std::size_t>(d.bh));
  for (int64_t j = j0; j < j1; ++j) {
    float* dx = dxw + j * d.ld;
    float* ds = ds_src + j * d.bh;
    std::memset(dx, 0, static_cast<std::size_t>(d.ld) * sizeof(float));
    std::fill(ds, ds + d.bh, 0.0f);
    for (int64_t q = g.out_ptr[j], q1 = g.out_ptr[j + 1]; q < q1; ++q) {
      const int64_t e = g.out_edge[q];
      const float* du = d_alpha + e * d.bh;
      for (int64_t kh = 0; kh < d.bh; ++kh) ds[kh] += du[kh];
      dropped_row(d, alpha, drop, e, a.data());
      const float* go = dout + static_cast<int64_t>(g.edge_dst[e]) * d.ld;
      for (int64_t kh = 0; kh < d.bh; ++kh) {
        for (int64_t c = 0; c < d.ch; ++c) dx[kh * d.ch + c] += a[kh] * go[kh * d.ch + c];
      }
    }
    const float* dd = ds_dst + j * d.bh;
    for (int64_t kh = 0; kh < d.bh; ++kh) {
      for (int64_t c = 0; c < d.ch; ++c) {
        const int64_t q = kh * d.ch + c;
        dx[q] = (dx[q] + ds[kh] * att_src[q]) + dd[kh] * att_dst[q];
      }
    }
  }
}

// d_att (ld) = Σ over the nodes, in order, of ds[j, kh] · xw[j, kh, c], in
// double; acc: ld doubles of scratch.
inline void attention_grad(int64_t n_nodes, const Dims& d, const float* ds, const float* xw, float* d_att,
                           std::vector<double>& acc) {
  acc.assign(static_cast<std::size_t>(d.ld), 0.0);
  for (int64_t j = 0; j < n_nodes; ++j) {
    const float* x = xw + j * d.ld;
    const float* s = ds + j * d.bh;
    for (int64_t kh = 0; kh < d.bh; ++kh) {
      const double sk = s[kh];
      double* a = acc.data() + kh * d.ch;
      for (int64_t c = 0; c < d.ch; ++c) a[c] += sk * static_cast<double>(x[kh * d.ch + c]);
    }
  }
  for (int64_t q = 0; q < d.ld; ++q) d_att[q] = static_cast<float>(acc[static_cast<std::size_t>(q)]);
}

}  // namespace gcn::cpu::gat

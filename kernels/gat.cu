// Graph attention (GATConv): the attention coefficients, the aggregation,
// and their backward, as five gather kernels and one column reduction.
//
// Every sum has one thread and a fixed order, and every scatter of the
// backward is a gather instead: the gradient flowing to a source node sums
// over its out-edges through EdgeLists::out_edge, so there are no
// floating-point atomics and each run gives the same bits. Float arithmetic
// uses __fmul_rn / __fadd_rn (never contracted into a fused multiply-add) in
// the CPU backend's order (src/backend/cpu/cpu_kernels_gat.hpp), so the two differ only
// where expf / expm1f differ from the host's.
//
// Thread mapping: the per-node kernels take one (node, model·head) pair per
// thread and loop over the node's edges (the edges into a node are a
// handful on citation graphs); the per-feature kernels take one (node,
// column) element, so adjacent threads read adjacent channels of a
// neighbour's row. The attention parameters' gradients are column sums over
// the nodes: chunks of rows into per-chunk partials (double), added in chunk
// order by the last block to finish (an integer ticket), as
// kernels/elementwise.cu's column sums.
//
// A batch of models is the column blocks kh = k · heads + h: each (node, kh)
// is computed alone, so a model's results do not depend on the batch.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "check.hpp"
#include "column_chunks.hpp"
#include "gat.hpp"
#include "gcn/rng.hpp"

namespace gcn::kernels {
namespace {

constexpr int kBlock = 256;
constexpr int64_t kMaxBlocks = 1 << 16;  // grid-stride beyond this
constexpr int kTileCols = 32;            // the parameter gradients' block: 32 columns x 8 row lanes
constexpr int kTileRows = kBlock / kTileCols;
constexpr float kNegativeSlope = 0.2f;

unsigned blocks_for(int64_t n) { return static_cast<unsigned>(std::min<int64_t>((n + kBlock - 1) / kBlock, kMaxBlocks)); }

__device__ __forceinline__ float leaky_relu(float u) { return u > 0.0f ? u : __fmul_rn(kNegativeSlope, u); }

// The dropout on model k's attention coefficients: the factor of coefficient
// (e, h), 1 without dropout.
struct AlphaDrop {
  uint64_t key;
  float p, scale;
  bool drop;
  __device__ __forceinline__ float mask(int64_t e, int heads, int h) const {
    if (!drop) return 1.0f;
    return dropout_keep_keyed(key, static_cast<uint64_t>(e * heads + h), p) ? scale : 0.0f;
  }
};

__device__ __forceinline__ AlphaDrop alpha_drop(float p, float scale, const StepState* steps, int64_t k,
                                                uint32_t site) {
  AlphaDrop d{0, p, scale, p > 0.0f};
  if (d.drop) {
    const StepState* step = steps + k;
    d.key = stream_key(site_seed(step->dropout_seed, site), static_cast<uint64_t>(step->epoch + 1));
  }
  return d;
}

// s_src, s_dst: one (node, kh) per thread, its channels in order.
static __global__ void gat_scores_kernel(int64_t n_nodes, int64_t bh, int64_t ch,
                                         const float* __restrict__ xw,       // (N, bh * ch)
                                         const float* __restrict__ att_src,  // (bh * ch)
                                         const float* __restrict__ att_dst,  // (bh * ch)
                                         float* __restrict__ s_src,          // (N, bh)
                                         float* __restrict__ s_dst) {        // (N, bh)
  const int64_t n = n_nodes * bh;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < n;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = t / bh, kh = t - i * bh;
    const float* x = xw + i * bh * ch + kh * ch;
    const float* as = att_src + kh * ch;
    const float* ad = att_dst + kh * ch;
    float ss = 0.0f, sd = 0.0f;
    for (int64_t c = 0; c < ch; ++c) {
      ss = __fadd_rn(ss, __fmul_rn(as[c], x[c]));
      sd = __fadd_rn(sd, __fmul_rn(ad[c], x[c]));
    }
    s_src[t] = ss;
    s_dst[t] = sd;
  }
}

// alpha: one (target node, kh) per thread; the max, the sum of exponentials
// and the quotients over its in-edges in edge order.
static __global__ void gat_softmax_kernel(int64_t n_nodes, int64_t bh, const int32_t* __restrict__ in_ptr,
                                          const int32_t* __restrict__ in_src,
                                          const float* __restrict__ s_src,  // (N, bh)
                                          const float* __restrict__ s_dst,  // (N, bh)
                                          float* __restrict__ alpha) {      // (E, bh)
  const int64_t n = n_nodes * bh;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < n;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = t / bh, kh = t - i * bh;
    const int64_t e0 = in_ptr[i], e1 = in_ptr[i + 1];
    const float sd = s_dst[t];
    float mx = -INFINITY;
    for (int64_t e = e0; e < e1; ++e) mx = fmaxf(mx, leaky_relu(__fadd_rn(s_src[in_src[e] * bh + kh], sd)));
    float sum = 0.0f;
    for (int64_t e = e0; e < e1; ++e) {
      const float ex = expf(__fadd_rn(leaky_relu(__fadd_rn(s_src[in_src[e] * bh + kh], sd)), -mx));
      alpha[e * bh + kh] = ex;
      sum = __fadd_rn(sum, ex);
    }
    for (int64_t e = e0; e < e1; ++e) alpha[e * bh + kh] = __fdiv_rn(alpha[e * bh + kh], sum);
  }
}

// out: one (target node, column) per thread, its in-edges in edge order.
static __global__ void gat_aggregate_kernel(int64_t n_nodes, int heads, int64_t bh, int64_t ch,
                                            const int32_t* __restrict__ in_ptr, const int32_t* __restrict__ in_src,
                                            const float* __restrict__ alpha,  // (E, bh)
                                            const float* __restrict__ xw,     // (N, bh * ch)
                                            const float* __restrict__ bias,   // (bh * ch) or null
                                            float* __restrict__ out,          // (N, bh * ch)
                                            float p, float scale, const StepState* __restrict__ steps,
                                            uint32_t site) {
  const int64_t ld = bh * ch, n = n_nodes * ld;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < n;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = t / ld, q = t - i * ld, kh = q / ch;
    const int64_t k = kh / heads;
    const int h = static_cast<int>(kh - k * heads);
    const AlphaDrop drop = alpha_drop(p, scale, steps, k, site);
    float acc = 0.0f;
    for (int64_t e = in_ptr[i], e1 = in_ptr[i + 1]; e < e1; ++e) {
      const float a = __fmul_rn(alpha[e * bh + kh], drop.mask(e, heads, h));
      acc = __fadd_rn(acc, __fmul_rn(a, xw[static_cast<int64_t>(in_src[e]) * ld + q]));
    }
    out[t] = bias != nullptr ? __fadd_rn(acc, bias[q]) : acc;
  }
}

// The backward through the softmax: one (target node, kh) per thread. The
// gradient of each coefficient (a channel sum), then of each score:
// du_e = alpha_e · (dalpha_e - Σ alpha · dalpha) · leaky_relu'(u_e), into
// d_alpha, and their sum into ds_dst.
static __global__ void gat_backward_targets_kernel(int64_t n_nodes, int heads, int64_t bh, int64_t ch,
                                                   const int32_t* __restrict__ in_ptr,
                                                   const int32_t* __restrict__ in_src,
                                                   const float* __restrict__ dout,   // (N, bh * ch)
                                                   const float* __restrict__ xw,     // (N, bh * ch)
                                                   const float* __restrict__ s_src,  // (N, bh)
                                                   const float* __restrict__ s_dst,  // (N, bh)
                                                   const float* __restrict__ alpha,  // (E, bh)
                                                   float p, float scale, const StepState* __restrict__ steps,
                                                   uint32_t site,
                                                   float* __restrict__ d_alpha,  // (E, bh)
                                                   float* __restrict__ ds_dst) {  // (N, bh)
  const int64_t ld = bh * ch, n = n_nodes * bh;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < n;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = t / bh, kh = t - i * bh;
    const int64_t k = kh / heads;
    const int h = static_cast<int>(kh - k * heads);
    const AlphaDrop drop = alpha_drop(p, scale, steps, k, site);
    const int64_t e0 = in_ptr[i], e1 = in_ptr[i + 1];
    const float* go = dout + i * ld + kh * ch;
    float dot_sum = 0.0f;
    for (int64_t e = e0; e < e1; ++e) {
      const float* x = xw + static_cast<int64_t>(in_src[e]) * ld + kh * ch;
      float dot = 0.0f;
      for (int64_t c = 0; c < ch; ++c) dot = __fadd_rn(dot, __fmul_rn(go[c], x[c]));
      const float da = __fmul_rn(dot, drop.mask(e, heads, h));
      d_alpha[e * bh + kh] = da;
      dot_sum = __fadd_rn(dot_sum, __fmul_rn(alpha[e * bh + kh], da));
    }
    const float sd = s_dst[t];
    float ds = 0.0f;
    for (int64_t e = e0; e < e1; ++e) {
      const float u = __fadd_rn(s_src[in_src[e] * bh + kh], sd);
      const float dz = __fmul_rn(alpha[e * bh + kh], __fadd_rn(d_alpha[e * bh + kh], -dot_sum));
      const float du = __fmul_rn(dz, u > 0.0f ? 1.0f : kNegativeSlope);
      d_alpha[e * bh + kh] = du;
      ds = __fadd_rn(ds, du);
    }
    ds_dst[t] = ds;
  }
}

// The gradient of xw: one (source node, column) per thread, its out-edges in
// out_edge order: the aggregation's drop(alpha) · dout[dst], then the
// scores' ds_src · att_src + ds_dst · att_dst. The thread of a head's first
// channel also writes ds_src (every thread of the head sums it, the same
// way).
static __global__ void gat_backward_sources_kernel(int64_t n_nodes, int heads, int64_t bh, int64_t ch,
                                                   const int32_t* __restrict__ out_ptr,
                                                   const int32_t* __restrict__ out_edge,
                                                   const int32_t* __restrict__ edge_dst,
                                                   const float* __restrict__ dout,     // (N, bh * ch)
                                                   const float* __restrict__ att_src,  // (bh * ch)
                                                   const float* __restrict__ att_dst,  // (bh * ch)
                                                   const float* __restrict__ alpha,    // (E, bh)
                                                   const float* __restrict__ d_alpha,  // (E, bh)
                                                   const float* __restrict__ ds_dst,   // (N, bh)
                                                   float p, float scale, const StepState* __restrict__ steps,
                                                   uint32_t site,
                                                   float* __restrict__ ds_src,  // (N, bh)
                                                   float* __restrict__ dxw) {   // (N, bh * ch)
  const int64_t ld = bh * ch, n = n_nodes * ld;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < n;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t j = t / ld, q = t - j * ld, kh = q / ch;
    const int64_t k = kh / heads;
    const int h = static_cast<int>(kh - k * heads);
    const AlphaDrop drop = alpha_drop(p, scale, steps, k, site);
    float ds = 0.0f, acc = 0.0f;
    for (int64_t r = out_ptr[j], r1 = out_ptr[j + 1]; r < r1; ++r) {
      const int64_t e = out_edge[r];
      ds = __fadd_rn(ds, d_alpha[e * bh + kh]);
      const float a = __fmul_rn(alpha[e * bh + kh], drop.mask(e, heads, h));
      acc = __fadd_rn(acc, __fmul_rn(a, dout[static_cast<int64_t>(edge_dst[e]) * ld + q]));
    }
    if (q == kh * ch) ds_src[j * bh + kh] = ds;
    dxw[t] = __fadd_rn(__fadd_rn(acc, __fmul_rn(ds, att_src[q])), __fmul_rn(ds_dst[j * bh + kh], att_dst[q]));
  }
}

// d_att_src, d_att_dst (ld each) = Σ over the nodes of ds[j, kh] · xw[j, q]:
// columns [0, ld) for the sources, [ld, 2 ld) for the targets. Block (x: 32
// columns, y: a chunk of rows); thread (tx, ty) sums rows ty, ty + 8, ... of
// the chunk in double, the 8 sums of a column go into the chunk's partial in
// ty order, and the last block adds each column's partials in chunk order.
// The order depends only on the number of rows.
static __global__ void gat_attention_grad_kernel(int64_t n_nodes, int64_t bh, int64_t ch,
                                                 const float* __restrict__ xw,      // (N, bh * ch)
                                                 const float* __restrict__ ds_src,  // (N, bh)
                                                 const float* __restrict__ ds_dst,  // (N, bh)
                                                 int64_t chunk_rows,
                                                 float* __restrict__ d_att_src,  // (bh * ch)
                                                 float* __restrict__ d_att_dst,  // (bh * ch)
                                                 double* __restrict__ partial,   // (chunks, 2 * bh * ch)
                                                 unsigned* counter) {
  __shared__ double tile[kBlock];
  __shared__ bool last;
  const int64_t ld = bh * ch, cols = 2 * ld;
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
  const int tid = ty * static_cast<int>(blockDim.x) + tx;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + tx;
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * chunk_rows;
  const int64_t end = min(n_nodes, begin + chunk_rows);
  double acc = 0.0;
  if (col < cols) {
    const bool dst = col >= ld;
    const int64_t q = dst ? col - ld : col, kh = q / ch;
    const float* ds = dst ? ds_dst : ds_src;
    // A product of two floats is exact in double, so a fused multiply-add
    // here rounds as the CPU's multiply then add.
    for (int64_t r = begin + ty; r < end; r += blockDim.y)
      acc += static_cast<double>(ds[r * bh + kh]) * static_cast<double>(xw[r * ld + q]);
  }
  if (!column_chunks::last_block_after_partials(acc, col, cols, tile, &last, partial, counter)) return;
  for (int64_t c = tid; c < cols; c += static_cast<int64_t>(blockDim.x) * blockDim.y) {
    const auto sum = static_cast<float>(column_chunks::column_total(partial, c, cols));
    if (c < ld) {
      d_att_src[c] = sum;
    } else {
      d_att_dst[c - ld] = sum;
    }
  }
  if (tid == 0) *counter = 0u;  // ready for the next launch
}

using column_chunks::chunk_rows_for;

// The scale of kept coefficients, as the CPU rounds it; p >= 1 keeps nothing.
float keep_scale(float p) { return p > 0.0f && p < 1.0f ? 1.0f / (1.0f - p) : 1.0f; }

}  // namespace

void launch_gat_attention(const GatShape& shape, const int32_t* in_ptr, const int32_t* in_src, const float* xw,
                          const float* att_src, const float* att_dst, float* s_src, float* s_dst, float* alpha,
                          cudaStream_t stream) {
  const int64_t bh = static_cast<int64_t>(shape.batch) * shape.heads;
  const int64_t n = static_cast<int64_t>(shape.n_nodes) * bh;
  if (n <= 0) return;
  gat_scores_kernel<<<blocks_for(n), kBlock, 0, stream>>>(shape.n_nodes, bh, shape.ch, xw, att_src, att_dst, s_src,
                                                          s_dst);
  GCN_CHECK_LAUNCH("gat_scores_kernel");
  if (shape.n_edges <= 0) return;
  gat_softmax_kernel<<<blocks_for(n), kBlock, 0, stream>>>(shape.n_nodes, bh, in_ptr, in_src, s_src, s_dst, alpha);
  GCN_CHECK_LAUNCH("gat_softmax_kernel");
}

void launch_gat_aggregate(const GatShape& shape, const int32_t* in_ptr, const int32_t* in_src, const float* alpha,
                          const float* xw, const float* bias, float* out, float p, const StepState* steps,
                          uint32_t site, cudaStream_t stream) {
  const int64_t bh = static_cast<int64_t>(shape.batch) * shape.heads;
  const int64_t n = static_cast<int64_t>(shape.n_nodes) * bh * shape.ch;
  if (n <= 0) return;
  gat_aggregate_kernel<<<blocks_for(n), kBlock, 0, stream>>>(shape.n_nodes, shape.heads, bh, shape.ch, in_ptr, in_src,
                                                             alpha, xw, bias, out, p, keep_scale(p),
                                                             p > 0.0f ? steps : nullptr, site);
  GCN_CHECK_LAUNCH("gat_aggregate_kernel");
}

int64_t gat_backward_scratch(const GatShape& shape) {
  const int64_t cols = 2 * static_cast<int64_t>(shape.batch) * shape.heads * shape.ch;
  if (shape.n_nodes <= 0 || cols <= 0) return 0;
  const int64_t chunk = chunk_rows_for(shape.n_nodes);
  return (shape.n_nodes + chunk - 1) / chunk * cols;
}

void launch_gat_backward(const GatShape& shape, const int32_t* in_ptr, const int32_t* in_src,
                         const int32_t* edge_dst, const int32_t* out_ptr, const int32_t* out_edge, const float* dout,
                         const float* xw, const float* att_src, const float* att_dst, const float* s_src,
                         const float* s_dst, const float* alpha, float p, const StepState* steps, uint32_t site,
                         float* dxw, float* d_att_src, float* d_att_dst, float* d_alpha, float* ds_src,
                         float* ds_dst, double* partial, unsigned* counter, cudaStream_t stream) {
  const int64_t bh = static_cast<int64_t>(shape.batch) * shape.heads;
  const int64_t ld = bh * shape.ch;
  if (ld <= 0) return;
  if (shape.n_nodes <= 0) {
    CUDA_CHECK(cudaMemsetAsync(d_att_src, 0, static_cast<size_t>(ld) * sizeof(float), stream));
    CUDA_CHECK(cudaMemsetAsync(d_att_dst, 0, static_cast<size_t>(ld) * sizeof(float), stream));
    return;
  }
  const int64_t nodes = shape.n_nodes;
  const float scale = keep_scale(p);
  const StepState* drop_steps = p > 0.0f ? steps : nullptr;
  gat_backward_targets_kernel<<<blocks_for(nodes * bh), kBlock, 0, stream>>>(
      nodes, shape.heads, bh, shape.ch, in_ptr, in_src, dout, xw, s_src, s_dst, alpha, p, scale, drop_steps, site,
      d_alpha, ds_dst);
  GCN_CHECK_LAUNCH("gat_backward_targets_kernel");
  gat_backward_sources_kernel<<<blocks_for(nodes * ld), kBlock, 0, stream>>>(
      nodes, shape.heads, bh, shape.ch, out_ptr, out_edge, edge_dst, dout, att_src, att_dst, alpha, d_alpha, ds_dst,
      p, scale, drop_steps, site, ds_src, dxw);
  GCN_CHECK_LAUNCH("gat_backward_sources_kernel");
  const int64_t chunk = chunk_rows_for(nodes);
  const dim3 grid(static_cast<unsigned>((2 * ld + kTileCols - 1) / kTileCols),
                  static_cast<unsigned>((nodes + chunk - 1) / chunk));
  gat_attention_grad_kernel<<<grid, dim3(kTileCols, kTileRows), 0, stream>>>(
      nodes, bh, shape.ch, xw, ds_src, ds_dst, chunk, d_att_src, d_att_dst, partial, counter);
  GCN_CHECK_LAUNCH("gat_attention_grad_kernel");
}

}  // namespace gcn::kernels

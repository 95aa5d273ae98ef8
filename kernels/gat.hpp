// Launchers for graph attention (GATConv, gcn::Backend's gat_* ops): the
// attention coefficients, the aggregation with dropout on the coefficients,
// and the backward of both. Row-major device memory, enqueued on `stream`.
//
// The edges (gcn::EdgeLists, device memory): the edges into node i are
// [in_ptr[i], in_ptr[i + 1]) ("edge order"), edge e runs in_src[e] ->
// edge_dst[e]; the edges out of node j are out_edge[out_ptr[j] ..
// out_ptr[j + 1]). A batch of `batch` models of `heads` heads with ch
// channels each: bh = batch · heads score columns, ld = bh · ch feature
// columns, model k's head h at column block kh = k · heads + h.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "gcn/backend/step_state.hpp"

namespace gcn::kernels {

struct GatShape {
  int32_t n_nodes;
  int64_t n_edges;
  int heads;
  int batch;
  int64_t ch;  // channels per head
};

// s_src, s_dst (N, bh) = the scores of every node; alpha (E, bh) = the
// softmax over each node's in-edges of leaky_relu(s_src[src] + s_dst[dst],
// 0.2), max-subtracted.
void launch_gat_attention(const GatShape& shape, const int32_t* in_ptr, const int32_t* in_src,
                          const float* xw,       // (N, ld)
                          const float* att_src,  // (ld)
                          const float* att_dst,  // (ld)
                          float* s_src, float* s_dst, float* alpha, cudaStream_t stream);

// out (N, ld) = Σ over each node's in-edges, in edge order, of
// drop(alpha[e, kh]) · xw[src(e), kh, :], plus bias (ld; may be null). With
// p > 0 coefficient (e, h) of model k is kept iff dropout_keep(site_seed(
// steps[k].dropout_seed, site), steps[k].epoch + 1, e · heads + h, p), and
// scaled by 1 / (1 - p).
void launch_gat_aggregate(const GatShape& shape, const int32_t* in_ptr, const int32_t* in_src,
                          const float* alpha,  // (E, bh)
                          const float* xw,     // (N, ld)
                          const float* bias, float* out, float p, const StepState* steps, uint32_t site,
                          cudaStream_t stream);

// Scratch (doubles) launch_gat_backward needs for the attention parameters'
// gradients.
int64_t gat_backward_scratch(const GatShape& shape);

// The backward of launch_gat_attention + launch_gat_aggregate (the same p,
// steps, site) from dout (N, ld): dxw (N, ld), d_att_src, d_att_dst (ld)
// written whole; d_alpha (E, bh) receives dL/d(the score before the
// leaky_relu) of each edge, ds_src and ds_dst (N, bh) dL/d s_src and
// dL/d s_dst. Sums over a node's in-edges in edge order, over its out-edges
// in out_edge order, over the nodes (the parameters' gradients, in double)
// in a fixed order that depends only on N: no floating-point atomics.
// partial: gat_backward_scratch doubles; counter: one unsigned that is zero
// and is left at zero.
void launch_gat_backward(const GatShape& shape, const int32_t* in_ptr, const int32_t* in_src,
                         const int32_t* edge_dst, const int32_t* out_ptr, const int32_t* out_edge,
                         const float* dout,  // (N, ld)
                         const float* xw,    // (N, ld)
                         const float* att_src, const float* att_dst,
                         const float* s_src, const float* s_dst,  // (N, bh)
                         const float* alpha,                      // (E, bh)
                         float p, const StepState* steps, uint32_t site, float* dxw, float* d_att_src,
                         float* d_att_dst, float* d_alpha, float* ds_src, float* ds_dst, double* partial,
                         unsigned* counter, cudaStream_t stream);

}  // namespace gcn::kernels

// The classifier head: log_softmax, fused log_softmax + NLL, argmax + accuracy.
//
// Fused: the loss needs max and log-sum-exp of each row, and the gradient
// (softmax - onehot) / n needs the same two numbers, so one kernel reads each
// row of logits once and writes both the per-row loss term and the gradient
// row (as llm.c's fused_classifier does), instead of log_softmax, gather,
// mean and a backward pass over the (M, C) matrix.
//
// Row mapping: a group of G lanes (G = the next power of two >= C, at most 32)
// owns one row and strides over its columns; reductions are butterfly shuffles
// within the group. C <= 32 (GCN's 3..40 classes) packs 32 / G rows per warp so
// no lane idles on a 7-wide row; C > 32 gives a whole warp to a row with
// strided loops, which stays correct for any C (and fine up to a few thousand).
//
// Determinism: no floating-point atomics. Per-row loss terms go to a scratch
// array that one block sums in a fixed order (double accumulators, a fixed
// tree); shuffle trees have a fixed shape. The accuracy counts use integer
// atomics, which are exact in any order.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <type_traits>

#include "check.hpp"
#include "classifier.hpp"

namespace gcn::kernels {
namespace {

constexpr int kRowBlock = 256;     // threads per block for the row kernels (a multiple of 32)
constexpr int kReduceBlock = 512;  // threads of the single-block loss reduction (a power of two)

template <int G>
__device__ __forceinline__ float group_max(float v) {
#pragma unroll
  for (int offset = G / 2; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset, G));
  return v;
}

template <int G>
__device__ __forceinline__ float group_sum(float v) {
#pragma unroll
  for (int offset = G / 2; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset, G);
  return v;
}

struct RowStats {
  float max;  // row maximum
  float sum;  // sum of exp(x - max), >= 1 for a row of finite values
};

// Every lane of the warp must call this (the shuffles use a full mask), also
// lanes whose row is past the end (active == false).
template <int G>
__device__ __forceinline__ RowStats row_stats(const float* xr, int64_t cols, int lane, bool active) {
  float m = -INFINITY;
  if (active)
    for (int64_t j = lane; j < cols; j += G) m = fmaxf(m, xr[j]);
  m = group_max<G>(m);
  float s = 0.0f;
  if (active)
    for (int64_t j = lane; j < cols; j += G) s += expf(xr[j] - m);
  s = group_sum<G>(s);
  return {m, s};
}

template <int G>
static __global__ void log_softmax_kernel(const float* x,  // (rows, cols)
                                          float* y,        // (rows, cols), may alias x
                                          int64_t rows, int64_t cols) {
  // blockDim.x is a multiple of G, so a group never straddles two blocks.
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / G;
  const int lane = static_cast<int>(threadIdx.x % G);
  const bool active = row < rows;
  const int64_t offset = (active ? row : 0) * cols;  // int64: rows * cols may pass 2^31
  const RowStats st = row_stats<G>(x + offset, cols, lane, active);
  if (!active) return;
  const float log_sum = logf(st.sum);
  // (x - max) - log_sum, not x - (max + log_sum): with logits near 1e30 the
  // latter would round log_sum away.
  for (int64_t j = lane; j < cols; j += G) y[offset + j] = (x[offset + j] - st.max) - log_sum;
}

template <int G>
static __global__ void log_softmax_nll_kernel(const float* __restrict__ logits,  // (rows, cols)
                                              const int32_t* __restrict__ labels,  // (rows)
                                              const uint8_t* __restrict__ split,   // (rows)
                                              uint8_t mask_bit, float inv_n, int64_t rows, int64_t cols,
                                              float* __restrict__ row_loss,  // (rows)
                                              float* __restrict__ grad) {    // (rows, cols) or null
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / G;
  const int lane = static_cast<int>(threadIdx.x % G);
  const bool active = row < rows;
  const bool masked = active && (split[row] & mask_bit) != 0;
  const int64_t label = masked ? labels[row] : -1;
  const int64_t offset = (active ? row : 0) * cols;
  const float* xr = logits + offset;
  const RowStats st = row_stats<G>(xr, cols, lane, active);
  if (!active) return;
  if (lane == 0) {
    float term = 0.0f;
    if (masked) term = (label >= 0 && label < cols) ? logf(st.sum) - (xr[label] - st.max) : NAN;
    row_loss[row] = term;
  }
  if (grad == nullptr) return;
  float* gr = grad + offset;
  if (masked) {
    const float inv_sum = 1.0f / st.sum;
    for (int64_t j = lane; j < cols; j += G)
      gr[j] = (expf(xr[j] - st.max) * inv_sum - (j == label ? 1.0f : 0.0f)) * inv_n;
  } else {
    for (int64_t j = lane; j < cols; j += G) gr[j] = 0.0f;
  }
}

// One block: a fixed assignment of rows to threads and a fixed tree, so the
// sum is the same bits on every run.
static __global__ void masked_mean_kernel(const float* __restrict__ row_loss,  // (rows)
                                          int64_t rows, int64_t n_masked, float* __restrict__ loss_out) {
  __shared__ double partial[kReduceBlock];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < rows; i += kReduceBlock) acc += row_loss[i];
  partial[threadIdx.x] = acc;
  __syncthreads();
#pragma unroll
  for (int stride = kReduceBlock / 2; stride > 0; stride >>= 1) {
    if (static_cast<int>(threadIdx.x) < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();  // the next level reads what this level wrote
  }
  if (threadIdx.x == 0)
    *loss_out = n_masked > 0 ? static_cast<float>(partial[0] / static_cast<double>(n_masked)) : 0.0f;
}

// Whether (a, ia) comes before (b, ib) in PyTorch's argmax order: NaN first
// (torch.argmax returns the first NaN), then the larger value, then the
// smaller index.
static __device__ __forceinline__ bool argmax_before(float a, int ia, float b, int ib) {
  const bool a_nan = isnan(a), b_nan = isnan(b);
  if (a_nan != b_nan) return a_nan;
  if (!a_nan && a != b) return a > b;
  return ia < ib;
}

template <int G>
static __global__ void argmax_correct_kernel(const float* __restrict__ logits,   // (rows, cols)
                                             const int32_t* __restrict__ labels,  // (rows)
                                             const uint8_t* __restrict__ split,   // (rows)
                                             int64_t rows, int64_t cols,
                                             int32_t* __restrict__ pred,       // (rows) or null
                                             int32_t* __restrict__ correct) {  // (3), zeroed
  __shared__ int block_correct[3];
  if (threadIdx.x < 3) block_correct[threadIdx.x] = 0;
  __syncthreads();  // the counters are zero before any row adds to them

  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / G;
  const int lane = static_cast<int>(threadIdx.x % G);
  const bool active = row < rows;
  const float* xr = logits + (active ? row : 0) * cols;
  // Seed from the lane's first element (not -inf) so a row of -inf still
  // picks column 0, like the CPU. The order is PyTorch's argmax: a NaN above
  // every number, then the larger value, then the smaller index.
  float best = -INFINITY;
  int idx = INT_MAX;
  if (active && lane < cols) {
    best = xr[lane];
    idx = lane;
    for (int64_t j = lane + G; j < cols; j += G) {
      const float v = xr[j];
      if (argmax_before(v, static_cast<int>(j), best, idx)) {
        best = v;
        idx = static_cast<int>(j);
      }
    }
  }
  // The order is total over (value, index) pairs, so every lane of the group
  // ends with the row's first maximum (or first NaN).
#pragma unroll
  for (int offset = G / 2; offset > 0; offset >>= 1) {
    const float other_best = __shfl_xor_sync(0xffffffffu, best, offset, G);
    const int other_idx = __shfl_xor_sync(0xffffffffu, idx, offset, G);
    if (argmax_before(other_best, other_idx, best, idx)) {
      best = other_best;
      idx = other_idx;
    }
  }
  if (active && lane == 0) {
    if (pred != nullptr) pred[row] = idx;
    if (idx == labels[row]) {
      const unsigned bits = split[row];
      for (int b = 0; b < 3; ++b)
        if ((bits >> b) & 1u) atomicAdd(&block_correct[b], 1);
    }
  }
  __syncthreads();  // all rows of the block are counted before the flush
  if (threadIdx.x < 3 && block_correct[threadIdx.x] != 0) atomicAdd(&correct[threadIdx.x], block_correct[threadIdx.x]);
}

// The unfused baseline's second half: one thread per element of the log-probs,
// the row's first column also writing the row's loss term.
static __global__ void nll_loss_kernel(const float* __restrict__ log_probs,  // (rows, cols)
                                       const int32_t* __restrict__ labels,   // (rows)
                                       const uint8_t* __restrict__ split,    // (rows)
                                       uint8_t mask_bit, float inv_n, int64_t rows, int64_t cols,
                                       float* __restrict__ row_loss,  // (rows)
                                       float* __restrict__ grad) {    // (rows, cols) or null
  const int64_t n = rows * cols;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = idx / cols;
    const int64_t col = idx - row * cols;
    const bool masked = (split[row] & mask_bit) != 0;
    const int64_t label = labels[row];
    if (col == 0) {
      float term = 0.0f;
      if (masked) term = (label >= 0 && label < cols) ? -log_probs[row * cols + label] : NAN;
      row_loss[row] = term;
    }
    if (grad != nullptr) grad[idx] = masked ? (expf(log_probs[idx]) - (col == label ? 1.0f : 0.0f)) * inv_n : 0.0f;
  }
}

int group_size(int64_t cols) {
  if (cols <= 1) return 1;
  if (cols <= 2) return 2;
  if (cols <= 4) return 4;
  if (cols <= 8) return 8;
  if (cols <= 16) return 16;
  return 32;
}

unsigned row_blocks(int64_t rows, int g) {
  const int64_t rows_per_block = kRowBlock / g;
  return static_cast<unsigned>((rows + rows_per_block - 1) / rows_per_block);
}

// Calls f(std::integral_constant<int, G>{}) for the group size that fits cols.
template <class F>
void dispatch_group(int64_t cols, F&& f) {
  switch (group_size(cols)) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    case 8: f(std::integral_constant<int, 8>{}); break;
    case 16: f(std::integral_constant<int, 16>{}); break;
    default: f(std::integral_constant<int, 32>{}); break;
  }
}

}  // namespace

void launch_log_softmax(const float* x, float* y, int64_t rows, int64_t cols, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return;
  dispatch_group(cols, [&](auto g) {
    constexpr int G = decltype(g)::value;
    log_softmax_kernel<G><<<row_blocks(rows, G), kRowBlock, 0, stream>>>(x, y, rows, cols);
    GCN_CHECK_LAUNCH("log_softmax_kernel");
  });
}

void launch_log_softmax_nll(const float* logits, const int32_t* labels, const uint8_t* split,
                            uint8_t mask_bit, int64_t n_masked, int64_t rows, int64_t cols,
                            float* row_loss, float* loss_out, float* grad, cudaStream_t stream) {
  if (rows > 0 && cols > 0) {
    const float inv_n = n_masked > 0 ? static_cast<float>(1.0 / static_cast<double>(n_masked)) : 0.0f;
    dispatch_group(cols, [&](auto g) {
      constexpr int G = decltype(g)::value;
      log_softmax_nll_kernel<G><<<row_blocks(rows, G), kRowBlock, 0, stream>>>(
          logits, labels, split, mask_bit, inv_n, rows, cols, row_loss, grad);
      GCN_CHECK_LAUNCH("log_softmax_nll_kernel");
    });
  }
  // Launched also for empty input: it writes the 0 loss.
  masked_mean_kernel<<<1, kReduceBlock, 0, stream>>>(row_loss, cols > 0 ? rows : 0, n_masked, loss_out);
  GCN_CHECK_LAUNCH("masked_mean_kernel");
}

void launch_nll_loss(const float* log_probs, const int32_t* labels, const uint8_t* split, uint8_t mask_bit,
                     int64_t n_masked, int64_t rows, int64_t cols, float* row_loss, float* loss_out, float* grad,
                     cudaStream_t stream) {
  if (rows > 0 && cols > 0) {
    const float inv_n = n_masked > 0 ? static_cast<float>(1.0 / static_cast<double>(n_masked)) : 0.0f;
    const int64_t blocks = std::min<int64_t>((rows * cols + kRowBlock - 1) / kRowBlock, int64_t{1} << 20);
    nll_loss_kernel<<<static_cast<unsigned>(blocks), kRowBlock, 0, stream>>>(log_probs, labels, split, mask_bit,
                                                                            inv_n, rows, cols, row_loss, grad);
    GCN_CHECK_LAUNCH("nll_loss_kernel");
  }
  masked_mean_kernel<<<1, kReduceBlock, 0, stream>>>(row_loss, cols > 0 ? rows : 0, n_masked, loss_out);
  GCN_CHECK_LAUNCH("masked_mean_kernel");
}

void launch_argmax_correct(const float* logits, const int32_t* labels, const uint8_t* split,
                           int64_t rows, int64_t cols, int32_t* pred, int32_t* correct_out,
                           cudaStream_t stream) {
  CUDA_CHECK(cudaMemsetAsync(correct_out, 0, 3 * sizeof(int32_t), stream));
  if (rows <= 0 || cols <= 0) return;
  dispatch_group(cols, [&](auto g) {
    constexpr int G = decltype(g)::value;
    argmax_correct_kernel<G><<<row_blocks(rows, G), kRowBlock, 0, stream>>>(logits, labels, split, rows, cols,
                                                                             pred, correct_out);
    GCN_CHECK_LAUNCH("argmax_correct_kernel");
  });
}

}  // namespace gcn::kernels

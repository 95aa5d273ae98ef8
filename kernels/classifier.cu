// The classifier head: log_softmax, the training loss, the evaluation.
//
// Fused: the loss needs max and log-sum-exp of each row, and the gradient
// (softmax - onehot) / n needs the same two numbers, so one kernel reads each
// row of logits once and writes the gradient row (as llm.c's
// fused_classifier does), instead of log_softmax, gather, mean and a
// backward pass over the (M, C) matrix; the same kernel also reduces the loss
// terms to their mean and the gradient to its column sums (the last layer's
// bias gradient), and writes the loss into the epoch's metrics slot. The
// evaluation kernel reads each row once for the validation loss, the argmax
// and the correct counts, and its last block makes the best-epoch decision.
//
// Row mapping: a group of G lanes (G = the next power of two >= C, at most 32)
// owns one row and strides over its columns; reductions are butterfly shuffles
// within the group. C <= 32 (GCN's 3..40 classes) packs 32 / G rows per warp so
// no lane idles on a 7-wide row; C > 32 gives a whole warp to a row with
// strided loops, which stays correct for any C (and fine up to a few thousand).
//
// Determinism: no floating-point atomics. Each block walks a fixed set of row
// tiles (grid-stride over at most kMaxBlocks blocks) and sums its rows' terms
// and gradient columns in tile and row order into a per-block partial
// (double); the last block to finish (an integer ticket) adds the partials in
// block order. Shuffle trees have a fixed shape. Counts are integers.
//
// A batch of models (batch.hpp): blockIdx.y is the model, with its own
// column block (rows a full batch row apart), step state, partials, ticket
// counter and ring slot, and the same grid in x as one model alone, so each
// model is summed in exactly the single model's order.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <string>
#include <type_traits>

#include "check.hpp"
#include "classifier.hpp"
#include "gcn/data/dataset.hpp"
#include "gcn/error.hpp"

namespace gcn::kernels {
namespace {

constexpr int kRowBlock = 256;     // threads per block for the row kernels (a multiple of 32)
constexpr int kReduceBlock = 512;  // threads of the single-block loss reduction (a power of two)
constexpr int64_t kMaxBlocks = 1024;  // row kernels with partials: the last block adds at most this many

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

// Whether this block is the last of the grid to finish: each block takes a
// ticket after its partials are written and fenced. Every thread calls it.
__device__ __forceinline__ bool last_block(unsigned* counter, bool* shared_flag) {
  __syncthreads();  // the block's partials are written (and fenced) before its ticket
  if (threadIdx.x == 0) *shared_flag = atomicAdd(counter, 1u) + 1u == gridDim.x;
  __syncthreads();  // every thread sees the verdict
  if (*shared_flag) __threadfence();
  return *shared_flag;
}

// The training loss. Per tile of kRowBlock / G rows: each group of G lanes
// handles one row (its loss term to shared memory, its gradient row to
// global memory); then thread 0 adds the tile's terms and thread c < cols
// the tile's gradient column c, both in row order.
template <int G>
static __global__ void classifier_loss_kernel(const float* __restrict__ logits,   // (rows, batch * cols)
                                              const int32_t* __restrict__ labels,  // (rows)
                                              const uint8_t* __restrict__ split,   // (rows)
                                              uint8_t mask_bit, int64_t n_masked, float inv_n, int64_t rows,
                                              int64_t cols,                // per model
                                              float* grad,                 // (rows, batch * cols) or null
                                              float* bias_grad,            // (batch * cols) or null
                                              const StepState* steps,      // (batch)
                                              EpochMetrics* ring, int32_t ring_size,
                                              double* partial,             // (batch, partial_stride)
                                              int64_t partial_stride,      // >= gridDim.x * (1 + cols)
                                              unsigned* counters) {        // (batch)
  __shared__ float terms[kRowBlock / G];
  __shared__ bool last;
  const int model = static_cast<int>(blockIdx.y);
  const StepState* step = steps + model;
  if (step->stopped != 0) return;
  // This model's column block, its rows ld apart.
  const int64_t ld = cols * gridDim.y;
  logits += model * cols;
  if (grad != nullptr) grad += model * cols;
  if (bias_grad != nullptr) bias_grad += model * cols;
  partial += model * partial_stride;
  unsigned* counter = counters + model;
  constexpr int kRows = kRowBlock / G;
  const int lane = static_cast<int>(threadIdx.x % G);
  const int slot_row = static_cast<int>(threadIdx.x / G);
  const bool sums = bias_grad != nullptr;
  // This block's partial: the loss terms, then the column sums; thread c
  // owns columns c, c + blockDim.x, ... (no two threads write one entry).
  double* mine = partial + static_cast<int64_t>(blockIdx.x) * (1 + cols);
  if (sums)
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) mine[1 + c] = 0.0;
  double loss_acc = 0.0;
  const int64_t n_tiles = (rows + kRows - 1) / kRows;
  for (int64_t tile = blockIdx.x; tile < n_tiles; tile += gridDim.x) {
    const int64_t row = tile * kRows + slot_row;
    const bool active = row < rows;
    const bool masked = active && (split[row] & mask_bit) != 0;
    const int64_t label = masked ? labels[row] : -1;
    const int64_t offset = (active ? row : 0) * ld;
    const float* xr = logits + offset;
    const RowStats st = row_stats<G>(xr, cols, lane, active);
    if (lane == 0) {
      float term = 0.0f;
      if (masked) term = (label >= 0 && label < cols) ? logf(st.sum) - (xr[label] - st.max) : NAN;
      terms[slot_row] = term;
    }
    if (active && grad != nullptr) {
      float* gr = grad + offset;
      if (masked) {
        const float inv_sum = 1.0f / st.sum;
        for (int64_t j = lane; j < cols; j += G)
          gr[j] = (expf(xr[j] - st.max) * inv_sum - (j == label ? 1.0f : 0.0f)) * inv_n;
      } else {
        for (int64_t j = lane; j < cols; j += G) gr[j] = 0.0f;
      }
    }
    __syncthreads();  // the tile's terms and gradient rows are written
    if (threadIdx.x == 0)
      for (int r = 0; r < kRows; ++r) loss_acc += terms[r];
    if (sums) {
      const int64_t end = min(rows, (tile + 1) * kRows);
      for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        double acc = mine[1 + c];
        for (int64_t r = tile * kRows; r < end; ++r) acc += grad[r * ld + c];
        mine[1 + c] = acc;
      }
    }
    __syncthreads();  // the next tile reuses the terms
  }
  if (threadIdx.x == 0) mine[0] = loss_acc;
  __threadfence();
  if (!last_block(counter, &last)) return;
  const volatile double* all = partial;
  const int64_t stride = 1 + cols;
  if (threadIdx.x == 0) {
    double total = 0.0;
    for (unsigned b = 0; b < gridDim.x; ++b) total += all[b * stride];
    ring[ring_index(ring_size, step->epoch, model, static_cast<int32_t>(gridDim.y))].loss =
        n_masked > 0 ? static_cast<float>(total / static_cast<double>(n_masked)) : 0.0f;
    *counter = 0u;  // ready for the next launch (no other block touches it now)
  }
  if (sums) {
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      double total = 0.0;
      for (unsigned b = 0; b < gridDim.x; ++b) total += all[b * stride + 1 + c];
      bias_grad[c] = static_cast<float>(total);
    }
  }
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

// The argmax of a row over a group of G lanes; every lane of the warp calls
// it (full-mask shuffles) and every lane of the group gets the result.
template <int G>
__device__ __forceinline__ int row_argmax(const float* xr, int64_t cols, int lane, bool active) {
  // Seed from the lane's first element (not -inf) so a row of -inf still
  // picks column 0, like the CPU.
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
  return idx;
}

// The evaluation. Per tile, each group handles one row: its validation loss
// term and its correct flags (one bit per split) go to shared memory; thread
// 0 adds the tile's in row order. The last block adds the blocks' partials
// in block order, writes the epoch's slot and makes the selection.
template <int G>
static __global__ void evaluate_kernel(const float* __restrict__ logits,   // (rows, batch * cols)
                                       const int32_t* __restrict__ labels,  // (rows)
                                       const uint8_t* __restrict__ split,   // (rows)
                                       int64_t n_val, int64_t rows,
                                       int64_t cols,      // per model
                                       StepState* steps,  // (batch)
                                       EpochMetrics* ring, int32_t ring_size, bool advance,
                                       double* partial,         // (batch, partial_stride)
                                       int64_t partial_stride,  // >= gridDim.x * 4
                                       unsigned* counters) {    // (batch)
  __shared__ float terms[kRowBlock / G];
  __shared__ unsigned flags[kRowBlock / G];
  __shared__ bool last;
  const int model = static_cast<int>(blockIdx.y);
  StepState* step = steps + model;
  if (step->stopped != 0) return;
  const int64_t ld = cols * gridDim.y;  // this model's column block, its rows ld apart
  logits += model * cols;
  partial += model * partial_stride;
  unsigned* counter = counters + model;
  constexpr int kRows = kRowBlock / G;
  const int lane = static_cast<int>(threadIdx.x % G);
  const int slot_row = static_cast<int>(threadIdx.x / G);
  double loss_acc = 0.0;
  int64_t correct[3] = {0, 0, 0};
  const int64_t n_tiles = (rows + kRows - 1) / kRows;
  for (int64_t tile = blockIdx.x; tile < n_tiles; tile += gridDim.x) {
    const int64_t row = tile * kRows + slot_row;
    const bool active = row < rows;
    const unsigned bits = active ? split[row] : 0u;
    const int64_t label = active ? labels[row] : -1;
    const float* xr = logits + (active ? row : 0) * ld;
    const RowStats st = row_stats<G>(xr, cols, lane, active);
    const int idx = row_argmax<G>(xr, cols, lane, active);
    if (lane == 0) {
      float term = 0.0f;
      if ((bits & kValBit) != 0) term = (label >= 0 && label < cols) ? logf(st.sum) - (xr[label] - st.max) : NAN;
      terms[slot_row] = term;
      flags[slot_row] = idx == label ? (bits & 7u) : 0u;
    }
    __syncthreads();  // the tile's terms and flags are written
    if (threadIdx.x == 0) {
      for (int r = 0; r < kRows; ++r) {
        loss_acc += terms[r];
        for (int b = 0; b < 3; ++b) correct[b] += (flags[r] >> b) & 1u;
      }
    }
    __syncthreads();  // the next tile reuses them
  }
  if (threadIdx.x == 0) {
    double* mine = partial + static_cast<int64_t>(blockIdx.x) * 4;
    mine[0] = loss_acc;
    for (int b = 0; b < 3; ++b) mine[1 + b] = static_cast<double>(correct[b]);  // exact below 2^53
    __threadfence();
  }
  if (!last_block(counter, &last)) return;
  if (threadIdx.x != 0) return;
  const volatile double* all = partial;
  double total = 0.0, counts[3] = {0.0, 0.0, 0.0};
  for (unsigned b = 0; b < gridDim.x; ++b) {
    total += all[b * 4];
    for (int k = 0; k < 3; ++k) counts[k] += all[b * 4 + 1 + k];
  }
  EpochMetrics& slot = ring[ring_index(ring_size, step->epoch, model, static_cast<int32_t>(gridDim.y))];
  slot.val_loss = n_val > 0 ? static_cast<float>(total / static_cast<double>(n_val)) : 0.0f;
  for (int k = 0; k < 3; ++k) slot.correct[k] = static_cast<int32_t>(counts[k]);
  slot.epoch = static_cast<int32_t>(step->epoch + 1);
  select_epoch(*step, slot, advance, MetricsRing{ring, ring_size}, model, static_cast<int32_t>(gridDim.y));
  *counter = 0u;  // ready for the next launch
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

namespace {
// At least one block: with no rows it still writes the empty case's figures.
unsigned tile_blocks(int64_t rows, int g) {
  const int64_t rows_per_tile = kRowBlock / g;
  return static_cast<unsigned>(
      std::max<int64_t>(1, std::min<int64_t>((rows + rows_per_tile - 1) / rows_per_tile, kMaxBlocks)));
}

// One partial per block and model: the loss (or the evaluation's four
// figures) and the gradient's column sums.
int64_t model_scratch(int64_t rows, int64_t cols) {
  return static_cast<int64_t>(tile_blocks(rows, group_size(cols))) * (4 + cols);
}

void require_batch(int batch, const char* op) {
  if (batch < 1 || batch > kMaxBatch) {
    throw Error(std::string(op) + ": a batch of " + std::to_string(batch) + " models (at most " +
                std::to_string(kMaxBatch) + ")");
  }
}
}  // namespace

int64_t classifier_scratch(int64_t rows, int64_t cols, int batch) {
  if (cols <= 0 || batch <= 0) return 0;
  return model_scratch(rows, cols) * batch;
}

void launch_classifier_loss(const float* logits, const int32_t* labels, const uint8_t* split, uint8_t mask_bit,
                            int64_t n_masked, int64_t rows, int64_t cols, int batch, float* grad, float* bias_grad,
                            const StepState* steps, EpochMetrics* ring, int32_t ring_size, double* partial,
                            unsigned* counters, cudaStream_t stream) {
  require_batch(batch, "classifier_loss");
  if (cols <= 0) return;
  const float inv_n = n_masked > 0 ? static_cast<float>(1.0 / static_cast<double>(n_masked)) : 0.0f;
  dispatch_group(cols, [&](auto g) {
    constexpr int G = decltype(g)::value;
    const dim3 grid(tile_blocks(rows, G), static_cast<unsigned>(batch));
    classifier_loss_kernel<G><<<grid, kRowBlock, 0, stream>>>(logits, labels, split, mask_bit, n_masked, inv_n, rows,
                                                              cols, grad, bias_grad, steps, ring, ring_size, partial,
                                                              model_scratch(rows, cols), counters);
    GCN_CHECK_LAUNCH("classifier_loss_kernel");
  });
}

void launch_evaluate(const float* logits, const int32_t* labels, const uint8_t* split, int64_t n_val, int64_t rows,
                     int64_t cols, int batch, StepState* steps, EpochMetrics* ring, int32_t ring_size, bool advance,
                     double* partial, unsigned* counters, cudaStream_t stream) {
  require_batch(batch, "evaluate");
  if (cols <= 0) return;
  dispatch_group(cols, [&](auto g) {
    constexpr int G = decltype(g)::value;
    const dim3 grid(tile_blocks(rows, G), static_cast<unsigned>(batch));
    evaluate_kernel<G><<<grid, kRowBlock, 0, stream>>>(logits, labels, split, n_val, rows, cols, steps, ring,
                                                       ring_size, advance, partial, model_scratch(rows, cols),
                                                       counters);
    GCN_CHECK_LAUNCH("evaluate_kernel");
  });
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

}  // namespace gcn::kernels

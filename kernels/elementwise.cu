// Element-wise ops. ReLU and dropout are fused: one read of the pre-activation
// and one write, the keep decision recomputed from the counter-based RNG
// (gcn/rng.hpp) instead of storing a mask, and the backward needs only the
// forward output y (y > 0 exactly where the input was positive and kept).
// The backward also sums the columns of its result (the previous layer's bias
// gradient) while it has them in registers, instead of a second pass.
//
// Per-epoch values (the dropout stream) are read from the step state in
// device memory, so a recorded epoch replays with the current values.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "check.hpp"
#include "elementwise.hpp"
#include "gcn/rng.hpp"

namespace gcn::kernels {
namespace {

constexpr int kBlock = 256;
constexpr int64_t kMaxBlocks = 1 << 16;  // grid-stride beyond this
constexpr int64_t kMaxChunks = 1024;     // row chunks of the column sums: the last block sums at most this many

unsigned blocks_for(int64_t n) { return static_cast<unsigned>(std::min<int64_t>((n + kBlock - 1) / kBlock, kMaxBlocks)); }

static __global__ void fill_outputs_kernel(OutputFills fills) {
  const OutputFill f = fills.item[blockIdx.y];
  const int64_t n = f.rows * f.cols;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    f.c[i] = f.bias != nullptr ? f.bias[i % f.cols] : 0.0f;
}

static __global__ void relu_dropout_forward_kernel(const float* __restrict__ x,  // (n)
                                                   float* __restrict__ y,        // (n)
                                                   int64_t n, float p, float scale,
                                                   const StepState* __restrict__ step) {
  const uint64_t key = p > 0.0f ? stream_key(step->dropout_seed, static_cast<uint64_t>(step->epoch + 1)) : 0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = x[i] > 0.0f ? x[i] : 0.0f;
    if (p <= 0.0f) {
      y[i] = v;
    } else {
      // v times the mask's 0 or 1 / (1 - p), as the CPU and PyTorch do (an
      // infinite value that is dropped becomes NaN, not 0).
      y[i] = __fmul_rn(v, dropout_keep_keyed(key, static_cast<uint64_t>(i), p) ? scale : 0.0f);
    }
  }
}

static __global__ void relu_dropout_backward_kernel(const float* dy,  // (n)
                                                    const float* y,   // (n) forward output
                                                    float* dx,        // (n), may alias dy
                                                    int64_t n, float scale) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dx[i] = y[i] > 0.0f ? dy[i] * scale : 0.0f;
}

// The backward with column sums. Block (x: a tile of TX columns, y: a chunk
// of rows); thread (tx, ty) takes column tx of rows ty, ty + TY, ... of the
// chunk, then the TY sums of a column are added in ty order into the chunk's
// partial. The last block to finish (an integer ticket) adds the partials of
// each column in chunk order. Fixed order throughout; no float atomics.
static __global__ void relu_dropout_backward_sums_kernel(const float* dy, const float* y, float* dx, int64_t rows,
                                                         int64_t cols, float scale, int64_t chunk_rows,
                                                         float* __restrict__ col_sums,
                                                         double* __restrict__ partial,  // (chunks, cols)
                                                         unsigned* counter) {
  __shared__ double tile[kBlock];
  __shared__ bool last;
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
  const int tid = ty * static_cast<int>(blockDim.x) + tx;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + tx;
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * chunk_rows;
  const int64_t end = min(rows, begin + chunk_rows);
  double acc = 0.0;
  if (col < cols) {
    for (int64_t r = begin + ty; r < end; r += blockDim.y) {
      const int64_t i = r * cols + col;
      const float g = y[i] > 0.0f ? dy[i] * scale : 0.0f;
      dx[i] = g;
      acc += g;
    }
  }
  tile[tid] = acc;
  __syncthreads();  // every row lane's sum is in the tile
  if (ty == 0 && col < cols) {
    double sum = tile[tx];
    for (int k = 1; k < static_cast<int>(blockDim.y); ++k) sum += tile[k * blockDim.x + tx];
    partial[static_cast<int64_t>(blockIdx.y) * cols + col] = sum;
    __threadfence();  // the partial is visible before this block's ticket
  }
  __syncthreads();  // all of the block's partials are written (and fenced) before its ticket
  if (tid == 0) {
    const unsigned blocks = gridDim.x * gridDim.y;
    last = atomicAdd(counter, 1u) + 1u == blocks;
  }
  __syncthreads();  // every thread sees whether this block is the last
  if (!last) return;
  __threadfence();
  const int64_t chunks = gridDim.y;
  for (int64_t c = tid; c < cols; c += static_cast<int64_t>(blockDim.x) * blockDim.y) {
    double sum = 0.0;
    for (int64_t k = 0; k < chunks; ++k) sum += static_cast<const volatile double*>(partial)[k * cols + c];
    col_sums[c] = static_cast<float>(sum);
  }
  if (tid == 0) *counter = 0u;  // ready for the next launch
}

// Whole 4-byte words where both ends are aligned, byte by byte otherwise.
static __global__ void copy_if_improved_kernel(unsigned char* __restrict__ dst, const unsigned char* __restrict__ src,
                                               int64_t bytes, bool words, const StepState* __restrict__ step) {
  if (step->improved == 0) return;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t n_words = words ? bytes / 4 : 0;
  for (int64_t i = first; i < n_words; i += stride)
    reinterpret_cast<uint32_t*>(dst)[i] = reinterpret_cast<const uint32_t*>(src)[i];
  for (int64_t i = n_words * 4 + first; i < bytes; i += stride) dst[i] = src[i];
}

int column_tile(int64_t cols) {
  int tx = 1;
  while (tx < 32 && tx < cols) tx *= 2;
  return tx;
}

int64_t chunk_rows_for(int64_t rows) { return std::max<int64_t>(64, (rows + kMaxChunks - 1) / kMaxChunks); }

}  // namespace

void launch_fill_outputs(const OutputFills& fills, cudaStream_t stream) {
  if (fills.count <= 0) return;
  int64_t largest = 0;
  for (int i = 0; i < fills.count; ++i) largest = std::max(largest, fills.item[i].rows * fills.item[i].cols);
  if (largest <= 0) return;
  fill_outputs_kernel<<<dim3(blocks_for(largest), static_cast<unsigned>(fills.count)), kBlock, 0, stream>>>(fills);
  GCN_CHECK_LAUNCH("fill_outputs_kernel");
}

void launch_relu_dropout_forward(const float* x, float* y, int64_t n, float p, const StepState* step,
                                 cudaStream_t stream) {
  if (n <= 0) return;
  // p >= 1 keeps nothing (uniform01 < 1 <= p), so the scale is never used.
  const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  relu_dropout_forward_kernel<<<blocks_for(n), kBlock, 0, stream>>>(x, y, n, p, scale, p > 0.0f ? step : nullptr);
  GCN_CHECK_LAUNCH("relu_dropout_forward_kernel");
}

int64_t relu_dropout_backward_scratch(int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0) return 0;
  const int64_t chunk = chunk_rows_for(rows);
  return (rows + chunk - 1) / chunk * cols;
}

void launch_relu_dropout_backward(const float* dy, const float* y, float* dx, int64_t rows, int64_t cols, float p,
                                  float* col_sums, double* partial, unsigned* counter, cudaStream_t stream) {
  // Multiplied by 1 / (1 - p) like the CPU reference; p >= 1 leaves every y
  // at 0, so the scale is never used.
  const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  const int64_t n = rows * cols;
  if (col_sums == nullptr) {
    if (n <= 0) return;
    relu_dropout_backward_kernel<<<blocks_for(n), kBlock, 0, stream>>>(dy, y, dx, n, scale);
    GCN_CHECK_LAUNCH("relu_dropout_backward_kernel");
    return;
  }
  if (cols <= 0) return;
  if (rows <= 0) {
    CUDA_CHECK(cudaMemsetAsync(col_sums, 0, static_cast<size_t>(cols) * sizeof(float), stream));
    return;
  }
  const int tx = column_tile(cols);
  const dim3 block(static_cast<unsigned>(tx), static_cast<unsigned>(kBlock / tx));
  const int64_t chunk = chunk_rows_for(rows);
  const dim3 grid(static_cast<unsigned>((cols + tx - 1) / tx), static_cast<unsigned>((rows + chunk - 1) / chunk));
  relu_dropout_backward_sums_kernel<<<grid, block, 0, stream>>>(dy, y, dx, rows, cols, scale, chunk, col_sums,
                                                                partial, counter);
  GCN_CHECK_LAUNCH("relu_dropout_backward_sums_kernel");
}

void launch_copy_if_improved(void* dst, const void* src, std::size_t bytes, const StepState* step,
                             cudaStream_t stream) {
  const auto n = static_cast<int64_t>(bytes);
  if (n <= 0) return;
  const bool words = reinterpret_cast<uintptr_t>(dst) % 4 == 0 && reinterpret_cast<uintptr_t>(src) % 4 == 0;
  copy_if_improved_kernel<<<blocks_for(words ? (n + 3) / 4 : n), kBlock, 0, stream>>>(
      static_cast<unsigned char*>(dst), static_cast<const unsigned char*>(src), n, words, step);
  GCN_CHECK_LAUNCH("copy_if_improved_kernel");
}

}  // namespace gcn::kernels

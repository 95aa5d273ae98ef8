// Column sum over rows in two fixed passes: each (chunk of rows, column) is
// summed in row order into a double partial, then each column sums its
// partials in chunk order. The chunking depends only on the shape, so the
// result is the same bits on every run, without floating-point atomics; two
// passes keep enough threads busy when there are many rows and few columns
// (GCN's bias gradients: thousands of rows, 7..64 columns).
#include <cuda_runtime.h>

#include <algorithm>

#include "check.hpp"
#include "reduce.hpp"

namespace gcn::kernels {
namespace {

constexpr int kBlock = 128;
// Short chunks: each thread's sum is a dependent chain of loads, so many
// short chains (and unrolled loads) beat a few long ones.
constexpr int64_t kRowsPerChunk = 64;
constexpr int64_t kMaxChunks = 65535;  // gridDim.y limit

int64_t rows_per_chunk(int64_t rows) {
  return std::max<int64_t>(kRowsPerChunk, (rows + kMaxChunks - 1) / kMaxChunks);
}
int64_t n_chunks(int64_t rows) {
  const int64_t per = rows_per_chunk(rows);
  return (rows + per - 1) / per;
}

static __global__ void column_partial_kernel(const float* __restrict__ x,  // (rows, cols)
                                             int64_t rows, int64_t cols, int64_t chunk_rows,
                                             double* __restrict__ partial) {  // (chunks, cols)
  const int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (col >= cols) return;
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * chunk_rows;
  const int64_t end = min(rows, begin + chunk_rows);
  double acc = 0.0;
#pragma unroll 8
  for (int64_t r = begin; r < end; ++r) acc += x[r * cols + col];  // in row order: unrolling keeps it
  partial[static_cast<int64_t>(blockIdx.y) * cols + col] = acc;
}

static __global__ void column_finish_kernel(const double* __restrict__ partial,  // (chunks, cols)
                                            int64_t chunks, int64_t cols, float* __restrict__ out) {  // (cols)
  const int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (col >= cols) return;
  double acc = 0.0;
#pragma unroll 8
  for (int64_t k = 0; k < chunks; ++k) acc += partial[k * cols + col];
  out[col] = static_cast<float>(acc);
}

}  // namespace

int64_t column_sum_scratch(int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0) return 0;
  return n_chunks(rows) * cols;
}

void launch_column_sum(const float* x, int64_t rows, int64_t cols, float* out, double* partial,
                       cudaStream_t stream) {
  if (cols <= 0) return;
  if (rows <= 0) {
    CUDA_CHECK(cudaMemsetAsync(out, 0, static_cast<size_t>(cols) * sizeof(float), stream));
    return;
  }
  const int64_t chunks = n_chunks(rows);
  const unsigned col_blocks = static_cast<unsigned>((cols + kBlock - 1) / kBlock);
  column_partial_kernel<<<dim3(col_blocks, static_cast<unsigned>(chunks)), kBlock, 0, stream>>>(
      x, rows, cols, rows_per_chunk(rows), partial);
  GCN_CHECK_LAUNCH("column_partial_kernel");
  column_finish_kernel<<<col_blocks, kBlock, 0, stream>>>(partial, chunks, cols, out);
  GCN_CHECK_LAUNCH("column_finish_kernel");
}

}  // namespace gcn::kernels

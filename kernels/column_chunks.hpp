// A deterministic column reduction over row chunks, shared by the kernels that
// sum a matrix's columns as they write it (the activation backward's bias
// gradient, GATConv's attention-vector gradients): block (x: columns, y: row
// lanes) sums a chunk of rows, each column's lane sums go into the chunk's
// partial in lane order, and the last block to finish (a ticket, not a
// floating-point atomic) adds each column's partials in chunk order. The
// order depends only on the number of rows, so every run gives the same bits.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace gcn::kernels::column_chunks {

constexpr int64_t kMaxChunks = 1024;  // the last block sums at most this many partials per column

// Rows per chunk (the grid's y is the number of chunks).
inline int64_t chunk_rows_for(int64_t rows) { return std::max<int64_t>(64, (rows + kMaxChunks - 1) / kMaxChunks); }

// Called by every thread of the block with acc, its sum of column `col` over
// its rows of the chunk; tile holds blockDim.x · blockDim.y doubles and last
// one bool, both in shared memory. Returns true in the last block only, with
// every chunk's partials written and visible.
__device__ __forceinline__ bool last_block_after_partials(double acc, int64_t col, int64_t cols, double* tile,
                                                          bool* last, double* partial, unsigned* counter) {
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
  const int tid = ty * static_cast<int>(blockDim.x) + tx;
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
    *last = atomicAdd(counter, 1u) + 1u == blocks;
  }
  __syncthreads();  // every thread sees whether this block is the last
  if (!*last) return false;
  __threadfence();
  return true;
}

// Column c's total: its partials in chunk order (the last block, after
// last_block_after_partials).
__device__ __forceinline__ double column_total(const double* partial, int64_t c, int64_t cols) {
  double sum = 0.0;
  for (int64_t k = 0; k < static_cast<int64_t>(gridDim.y); ++k) {
    sum += static_cast<const volatile double*>(partial)[k * cols + c];
  }
  return sum;
}

}  // namespace gcn::kernels::column_chunks

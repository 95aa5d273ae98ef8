// CSR SpMM over a balanced schedule (spmm.hpp). A group of G lanes (the next
// power of two >= n, at most 32) takes one segment; its lanes stride over the
// columns, so a warp reads each neighbour's row of b as coalesced segments
// and all lanes of a group read the same index and value (a broadcast).
//
// Determinism: a segment's sum runs in stored order; the segments of a long
// row leave partial sums, and the lane that finishes that row last (an
// integer atomic ticket; it resets the counter) adds them in segment order.
// No floating-point atomics, no 64-bit division per element.
#include <cuda_runtime.h>

#include <algorithm>
#include <string>
#include <type_traits>

#include "batch.hpp"
#include "check.hpp"
#include "gcn/error.hpp"
#include "gcn/rng.hpp"
#include "spmm.hpp"

namespace gcn::kernels {

SpmmSchedule make_spmm_schedule(const std::vector<int32_t>& indptr) {
  SpmmSchedule s;
  const int64_t rows = indptr.empty() ? 0 : static_cast<int64_t>(indptr.size()) - 1;
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t begin = indptr[r], end = indptr[r + 1];
    const int32_t count = std::max<int32_t>(1, (end - begin + kSegmentNnz - 1) / kSegmentNnz);
    if (count == 1) {
      s.segments.push_back({static_cast<int32_t>(r), begin, end, -1, -1, 1, -1, 0});
      continue;
    }
    const int32_t first = s.n_parts, counter = s.n_counters++;
    for (int32_t k = 0; k < count; ++k) {
      const int32_t b = begin + k * kSegmentNnz;
      s.segments.push_back({static_cast<int32_t>(r), b, std::min(end, b + kSegmentNnz), first + k, first, count,
                            counter, 0});
    }
    s.n_parts += count;
  }
  return s;
}

namespace {

constexpr int kBlock = 256;
constexpr int64_t kMaxBlocks = 1 << 16;  // grid-stride beyond this

// Model blockIdx.y of a batch (gridDim.y models): its values, its column
// block of b and c (rows ldb and ldc apart), its partials and counters.
template <int G>
static __global__ void csr_spmm_kernel(const SpmmSegment* __restrict__ segments, int64_t n_segments,
                                       const int32_t* __restrict__ indices,  // (nnz)
                                       const float* __restrict__ values,     // (batch, nnz)
                                       int64_t nnz, int64_t n,
                                       const float* __restrict__ b,      // (k, ldb)
                                       int64_t ldb,
                                       float* __restrict__ c,            // (rows, ldc)
                                       int64_t ldc,
                                       const float* __restrict__ bias,   // (n) or null
                                       float* partials,                  // (batch, n_parts, n)
                                       int64_t n_parts,
                                       unsigned* counters,               // (batch, n_counters)
                                       int64_t n_counters) {
  const int64_t model = blockIdx.y;
  values += model * nnz;
  b += model * n;
  c += model * n;
  partials += model * n_parts * n;
  counters += model * n_counters;
  const int lane = static_cast<int>(threadIdx.x % G);
  const int64_t group = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / G;
  const int64_t n_groups = static_cast<int64_t>(gridDim.x) * blockDim.x / G;
  for (int64_t s = group; s < n_segments; s += n_groups) {
    const SpmmSegment seg = segments[s];
    for (int64_t j = lane; j < n; j += G) {
      float acc = 0.0f;
      for (int32_t e = seg.begin; e < seg.end; ++e) {
        // __fmul_rn / __fadd_rn are never contracted into an FMA: the same
        // rounding as the CPU's acc += w * x.
        acc = __fadd_rn(acc, __fmul_rn(values[e], b[static_cast<int64_t>(indices[e]) * ldb + j]));
      }
      if (seg.part < 0) {
        c[static_cast<int64_t>(seg.row) * ldc + j] = bias != nullptr ? __fadd_rn(acc, bias[j]) : acc;
      } else {
        partials[static_cast<int64_t>(seg.part) * n + j] = acc;
      }
    }
    if (seg.part < 0 || lane >= n) continue;
    // A segment of a cut row: every lane that wrote partials takes a ticket
    // after a fence (its writes are visible before its ticket is); the lane
    // that takes the row's last ticket adds the partials in segment order.
    __threadfence();
    const unsigned expected = static_cast<unsigned>(seg.count) * static_cast<unsigned>(n < G ? n : G);
    if (atomicAdd(&counters[seg.counter], 1u) + 1u != expected) continue;
    __threadfence();
    for (int64_t j = 0; j < n; ++j) {
      // volatile: the other segments' partials were written by other blocks.
      const volatile float* part = partials + static_cast<int64_t>(seg.first) * n + j;
      float sum = part[0];
      for (int32_t k = 1; k < seg.count; ++k) sum = __fadd_rn(sum, part[static_cast<int64_t>(k) * n]);
      c[static_cast<int64_t>(seg.row) * ldc + j] = bias != nullptr ? __fadd_rn(sum, bias[j]) : sum;
    }
    counters[seg.counter] = 0u;  // ready for the next product
  }
}

// One thread per non-zero of model blockIdx.y: its row by binary search in
// indptr (the first r with indptr[r + 1] > e).
static __global__ void sparse_dropout_kernel(const int32_t* __restrict__ indptr,   // (rows + 1)
                                             const int32_t* __restrict__ indices,  // (nnz)
                                             const float* __restrict__ a_values,   // (nnz)
                                             int64_t rows, int64_t cols, int64_t nnz, bool transposed, float p,
                                             float scale, const StepState* __restrict__ steps, uint32_t site,
                                             float* __restrict__ values) {  // (batch, nnz)
  const StepState* step = steps + blockIdx.y;
  const uint64_t key = stream_key(site_seed(step->dropout_seed, site), static_cast<uint64_t>(step->epoch + 1));
  float* out = values + static_cast<int64_t>(blockIdx.y) * nnz;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < nnz;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t lo = 0, hi = rows - 1;  // the row holds e: indptr[lo] <= e < indptr[lo + 1]
    while (lo < hi) {
      const int64_t mid = (lo + hi + 1) / 2;
      if (indptr[mid] <= e) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    const int64_t col = indices[e];
    const int64_t element = transposed ? col * rows + lo : lo * cols + col;
    out[e] = __fmul_rn(a_values[e], dropout_keep_keyed(key, static_cast<uint64_t>(element), p) ? scale : 0.0f);
  }
}

template <class F>
void dispatch_group(int64_t n, F&& f) {
  if (n <= 1) f(std::integral_constant<int, 1>{});
  else if (n <= 2) f(std::integral_constant<int, 2>{});
  else if (n <= 4) f(std::integral_constant<int, 4>{});
  else if (n <= 8) f(std::integral_constant<int, 8>{});
  else if (n <= 16) f(std::integral_constant<int, 16>{});
  else f(std::integral_constant<int, 32>{});
}

}  // namespace

void launch_csr_spmm(const SpmmSegment* segments, int64_t n_segments, const int32_t* indices, const float* values,
                     int64_t n, const float* b, float* c, const float* bias, float* partials, unsigned* counters,
                     cudaStream_t stream) {
  if (n_segments <= 0 || n <= 0) return;
  dispatch_group(n, [&](auto g) {
    constexpr int G = decltype(g)::value;
    const int64_t segments_per_block = kBlock / G;
    const auto blocks =
        static_cast<unsigned>(std::min<int64_t>((n_segments + segments_per_block - 1) / segments_per_block, kMaxBlocks));
    csr_spmm_kernel<G><<<blocks, kBlock, 0, stream>>>(segments, n_segments, indices, values, 0, n, b, n, c, n, bias,
                                                      partials, 0, counters, 0);
    GCN_CHECK_LAUNCH("csr_spmm_kernel");
  });
}

void launch_csr_spmm_batch(const SpmmSegment* segments, int64_t n_segments, const int32_t* indices,
                           const float* values, int64_t nnz, int64_t n, int batch, const float* b, float* c,
                           float* partials, int64_t n_parts, unsigned* counters, int64_t n_counters,
                           cudaStream_t stream) {
  if (batch < 1 || batch > kMaxBatch) {
    throw Error("spmm_values: a batch of " + std::to_string(batch) + " models (at most " +
                std::to_string(kMaxBatch) + ")");
  }
  if (n_segments <= 0 || n <= 0) return;
  dispatch_group(n, [&](auto g) {
    constexpr int G = decltype(g)::value;
    const int64_t segments_per_block = kBlock / G;
    const auto blocks =
        static_cast<unsigned>(std::min<int64_t>((n_segments + segments_per_block - 1) / segments_per_block, kMaxBlocks));
    const int64_t ld = n * batch;
    csr_spmm_kernel<G><<<dim3(blocks, static_cast<unsigned>(batch)), kBlock, 0, stream>>>(
        segments, n_segments, indices, values, nnz, n, b, ld, c, ld, nullptr, partials, n_parts, counters, n_counters);
    GCN_CHECK_LAUNCH("csr_spmm_kernel");
  });
}

void launch_sparse_dropout(const int32_t* indptr, const int32_t* indices, const float* a_values, int64_t rows,
                           int64_t cols, int64_t nnz, bool transposed, float p, const StepState* steps, int batch,
                           uint32_t site, float* values, cudaStream_t stream) {
  if (batch < 1 || batch > kMaxBatch) {
    throw Error("sparse_dropout: a batch of " + std::to_string(batch) + " models (at most " +
                std::to_string(kMaxBatch) + ")");
  }
  if (nnz <= 0) return;
  if (p <= 0.0f) {  // every model's copy is a's values
    for (int k = 0; k < batch; ++k) {
      CUDA_CHECK(cudaMemcpyAsync(values + static_cast<int64_t>(k) * nnz, a_values,
                                 static_cast<size_t>(nnz) * sizeof(float), cudaMemcpyDeviceToDevice, stream));
    }
    return;
  }
  const float scale = 1.0f / (1.0f - p);
  const auto blocks = static_cast<unsigned>(std::min<int64_t>((nnz + kBlock - 1) / kBlock, kMaxBlocks));
  sparse_dropout_kernel<<<dim3(blocks, static_cast<unsigned>(batch)), kBlock, 0, stream>>>(
      indptr, indices, a_values, rows, cols, nnz, transposed, p, scale, steps, site, values);
  GCN_CHECK_LAUNCH("sparse_dropout_kernel");
}

}  // namespace gcn::kernels

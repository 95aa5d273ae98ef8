// CSR SpMM, one thread per output element. Consecutive threads take
// consecutive columns of one row, so a warp reads each neighbour's row of b
// as one coalesced segment and all threads of a row read the same index and
// value (a broadcast). With the GCN's narrow dense operands (16 hidden units,
// 7 classes) this is as much parallelism as a row holds.
#include <cuda_runtime.h>

#include <algorithm>

#include "check.hpp"
#include "spmm.hpp"

namespace gcn::kernels {
namespace {

constexpr int kBlock = 256;
constexpr int64_t kMaxBlocks = 1 << 16;  // grid-stride beyond this

static __global__ void csr_spmm_kernel(const int32_t* __restrict__ indptr,   // (rows + 1)
                                       const int32_t* __restrict__ indices,  // (nnz)
                                       const float* __restrict__ values,     // (nnz)
                                       int64_t rows, int64_t n,
                                       const float* __restrict__ b,  // (k, n)
                                       float* __restrict__ c) {      // (rows, n)
  const int64_t total = rows * n;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = i / n;
    const int64_t col = i - row * n;
    float acc = 0.0f;
    for (int32_t e = indptr[row]; e < indptr[row + 1]; ++e) {
      // __fmul_rn / __fadd_rn are never contracted into an FMA: the same
      // rounding as the CPU's acc += w * x.
      acc = __fadd_rn(acc, __fmul_rn(values[e], b[static_cast<int64_t>(indices[e]) * n + col]));
    }
    c[i] = acc;
  }
}

}  // namespace

void launch_csr_spmm(const int32_t* indptr, const int32_t* indices, const float* values, int64_t rows, int64_t n,
                     const float* b, float* c, cudaStream_t stream) {
  const int64_t total = rows * n;
  if (total <= 0) return;
  const auto blocks = static_cast<unsigned>(std::min<int64_t>((total + kBlock - 1) / kBlock, kMaxBlocks));
  csr_spmm_kernel<<<blocks, kBlock, 0, stream>>>(indptr, indices, values, rows, n, b, c);
  GCN_CHECK_LAUNCH("csr_spmm_kernel");
}

}  // namespace gcn::kernels

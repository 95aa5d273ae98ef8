// Launcher for the hand-written CSR SpMM: the deterministic fallback behind
// cuSPARSE (and a baseline gcn-bench compares it with). Row-major device
// memory, enqueued on `stream`.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace gcn::kernels {

// c (rows, n) = A (rows, k; CSR: indptr (rows + 1), indices / values (nnz))
// · b (k, n). Each output element sums its row's non-zeros in stored order,
// multiply then add with no fused multiply-add, exactly as the CPU backend
// does: the result is bit-identical from run to run, and to the CPU wherever
// the host compiler does not contract either.
void launch_csr_spmm(const int32_t* indptr, const int32_t* indices, const float* values, int64_t rows, int64_t n,
                     const float* b, float* c, cudaStream_t stream);

}  // namespace gcn::kernels

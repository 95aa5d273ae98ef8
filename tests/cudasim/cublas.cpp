// cublasSgemm on the CPU, as the cuBLAS documentation defines it: column-major
// C (m, n) = alpha * op(A) (m, k) * op(B) (k, n) + beta * C, with A stored in
// lda-strided columns (op N: m x k, lda >= m; op T: k x m, lda >= k), B alike
// with ldb, C with ldc >= m; beta == 0 overwrites C without reading it. The
// scalars are host pointers (CUBLAS_POINTER_MODE_HOST, the default). Each
// product sums its k terms in order in float.
#include <cublas_v2.h>

#include <algorithm>
#include <string>

#include "cudasim/sim.hpp"

struct cublasContext {
  cudaStream_t stream = nullptr;
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};

namespace {

// Whether a column-major (rows, cols) matrix with leading dimension ld lies in device memory.
bool matrix_in_device_memory(const float* p, int rows, int cols, int ld) {
  if (rows == 0 || cols == 0) return true;
  const size_t elems = static_cast<size_t>(ld) * static_cast<size_t>(cols - 1) + static_cast<size_t>(rows);
  return cudasim::is_device_range(p, elems * sizeof(float));
}

}  // namespace

extern "C" {

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  if (handle == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *handle = new cublasContext{};
  cudasim::count_object();
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  cudasim::drain();  // queued GEMMs hold the handle's settings by value, but finish them first as cuBLAS does
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->math = mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void* workspace, size_t bytes) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (bytes > 0 && !cudasim::is_device_range(workspace, bytes)) return CUBLAS_STATUS_INVALID_VALUE;
  handle->workspace = workspace;
  handle->workspace_bytes = bytes;
  return CUBLAS_STATUS_SUCCESS;
}

const char* cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "the operation completed successfully";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "an absent device architectural feature is required";
    case CUBLAS_STATUS_MAPPING_ERROR: return "an access to GPU memory space failed";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "an internal operation failed";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
  }
  return "unknown error";
}

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                           int k, const float* alpha, const float* A, int lda, const float* B, int ldb,
                           const float* beta, float* C, int ldc) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
  const int a_rows = ta ? k : m, a_cols = ta ? m : k;  // A as stored
  const int b_rows = tb ? n : k, b_cols = tb ? k : n;  // B as stored
  if ((transa != CUBLAS_OP_N && transa != CUBLAS_OP_T) || (transb != CUBLAS_OP_N && transb != CUBLAS_OP_T) ||
      m < 0 || n < 0 || k < 0 || lda < std::max(1, a_rows) || ldb < std::max(1, b_rows) || ldc < std::max(1, m) ||
      alpha == nullptr || beta == nullptr)
    return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  if (cudasim::sticky_error() != cudaSuccess) return CUBLAS_STATUS_EXECUTION_FAILED;
  if ((k > 0 && (!matrix_in_device_memory(A, a_rows, a_cols, lda) || !matrix_in_device_memory(B, b_rows, b_cols, ldb))) ||
      !matrix_in_device_memory(C, m, n, ldc)) {
    cudasim::fault(cudaErrorIllegalAddress,
                   "cublasSgemm(m=" + std::to_string(m) + ", n=" + std::to_string(n) + ", k=" + std::to_string(k) +
                       ", lda=" + std::to_string(lda) + ", ldb=" + std::to_string(ldb) + ", ldc=" +
                       std::to_string(ldc) + "): a matrix reaches outside device memory");
    return CUBLAS_STATUS_EXECUTION_FAILED;
  }
  const float a_scale = *alpha, b_scale = *beta;  // host scalars: read at the call
  cudasim::enqueue(handle->stream, "cublasSgemm", [=]() {
    for (int j = 0; j < n; ++j) {
      for (int i = 0; i < m; ++i) {
        float acc = 0.0f;
        for (int l = 0; l < k; ++l) {
          const float a = ta ? A[l + static_cast<size_t>(i) * lda] : A[i + static_cast<size_t>(l) * lda];
          const float b = tb ? B[j + static_cast<size_t>(l) * ldb] : B[l + static_cast<size_t>(j) * ldb];
          acc += a * b;
        }
        float& c = C[i + static_cast<size_t>(j) * ldc];
        c = b_scale == 0.0f ? a_scale * acc : a_scale * acc + b_scale * c;
      }
    }
  });
  return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"

// cublasSgemm on the CPU, as the cuBLAS documentation defines it: column-major
// C (m, n) = alpha * op(A) (m, k) * op(B) (k, n) + beta * C, with A stored in
// lda-strided columns (op N: m x k, lda >= m; op T: k x m, lda >= k), B alike
// with ldb, C with ldc >= m; beta == 0 overwrites C without reading it. The
// scalars are host pointers (CUBLAS_POINTER_MODE_HOST, the default). Each
// product sums its k terms in order in float.
//
// cublasSgemmStridedBatched: the same product for i in [0, batchCount), on the
// matrices at A + i * strideA, B + i * strideB and C + i * strideC (strides in
// elements; every instance has the same m, n, k, leading dimensions and
// transposes), batchCount < 0 being INVALID_VALUE like a negative dimension.
// Instances run in index order.
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

// The arguments of one GEMM as cuBLAS checks them (INVALID_VALUE).
bool gemm_arguments_valid(cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k, int lda, int ldb,
                          int ldc, const float* alpha, const float* beta) {
  const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
  const int a_rows = ta ? k : m, b_rows = tb ? n : k;  // as stored
  return (transa == CUBLAS_OP_N || transa == CUBLAS_OP_T) && (transb == CUBLAS_OP_N || transb == CUBLAS_OP_T) &&
         m >= 0 && n >= 0 && k >= 0 && lda >= std::max(1, a_rows) && ldb >= std::max(1, b_rows) &&
         ldc >= std::max(1, m) && alpha != nullptr && beta != nullptr;
}

// Whether instance i's matrices lie in device memory; if not, the fault.
bool gemm_in_device_memory(const char* call, bool ta, bool tb, int m, int n, int k, const float* A, int lda,
                           const float* B, int ldb, float* C, int ldc, long long i) {
  const int a_rows = ta ? k : m, a_cols = ta ? m : k;  // A as stored
  const int b_rows = tb ? n : k, b_cols = tb ? k : n;  // B as stored
  const bool inputs_in = k == 0 || (matrix_in_device_memory(A, a_rows, a_cols, lda) &&
                                    matrix_in_device_memory(B, b_rows, b_cols, ldb));
  if (!inputs_in || !matrix_in_device_memory(C, m, n, ldc)) {
    cudasim::fault(cudaErrorIllegalAddress,
                   std::string(call) + "(m=" + std::to_string(m) + ", n=" + std::to_string(n) + ", k=" +
                       std::to_string(k) + ", lda=" + std::to_string(lda) + ", ldb=" + std::to_string(ldb) +
                       ", ldc=" + std::to_string(ldc) + "): " + (i >= 0 ? "instance " + std::to_string(i) + ": " : "") +
                       "a matrix reaches outside device memory");
    return false;
  }
  return true;
}

// C = alpha * op(A) * op(B) + beta * C for one instance, each sum of k terms
// in order in float.
void gemm_one(bool ta, bool tb, int m, int n, int k, float alpha, const float* A, int lda, const float* B, int ldb,
              float beta, float* C, int ldc) {
  for (int j = 0; j < n; ++j) {
    for (int i = 0; i < m; ++i) {
      float acc = 0.0f;
      for (int l = 0; l < k; ++l) {
        const float a = ta ? A[l + static_cast<size_t>(i) * lda] : A[i + static_cast<size_t>(l) * lda];
        const float b = tb ? B[j + static_cast<size_t>(l) * ldb] : B[l + static_cast<size_t>(j) * ldb];
        acc += a * b;
      }
      float& c = C[i + static_cast<size_t>(j) * ldc];
      c = beta == 0.0f ? alpha * acc : alpha * acc + beta * c;
    }
  }
}

// Instance i's matrix of a strided batch (a null pointer, of a matrix the
// product does not read, stays null: no offset is applied to it).
template <class T>
T* instance(T* p, long long i, long long stride) {
  return p == nullptr ? p : p + i * stride;
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
  if (!gemm_arguments_valid(transa, transb, m, n, k, lda, ldb, ldc, alpha, beta)) return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  if (cudasim::sticky_error() != cudaSuccess) return CUBLAS_STATUS_EXECUTION_FAILED;
  const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
  if (!gemm_in_device_memory("cublasSgemm", ta, tb, m, n, k, A, lda, B, ldb, C, ldc, -1)) {
    return CUBLAS_STATUS_EXECUTION_FAILED;
  }
  const float a_scale = *alpha, b_scale = *beta;  // host scalars: read at the call
  cudasim::enqueue(handle->stream, "cublasSgemm",
                   [=]() { gemm_one(ta, tb, m, n, k, a_scale, A, lda, B, ldb, b_scale, C, ldc); });
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                         int m, int n, int k, const float* alpha, const float* A, int lda,
                                         long long int strideA, const float* B, int ldb, long long int strideB,
                                         const float* beta, float* C, int ldc, long long int strideC,
                                         int batchCount) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!gemm_arguments_valid(transa, transb, m, n, k, lda, ldb, ldc, alpha, beta) || batchCount < 0) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (m == 0 || n == 0 || batchCount == 0) return CUBLAS_STATUS_SUCCESS;
  if (cudasim::sticky_error() != cudaSuccess) return CUBLAS_STATUS_EXECUTION_FAILED;
  const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
  for (long long i = 0; i < batchCount; ++i) {
    if (!gemm_in_device_memory("cublasSgemmStridedBatched", ta, tb, m, n, k, instance(A, i, strideA), lda,
                               instance(B, i, strideB), ldb, instance(C, i, strideC), ldc, i)) {
      return CUBLAS_STATUS_EXECUTION_FAILED;
    }
  }
  const float a_scale = *alpha, b_scale = *beta;  // host scalars: read at the call
  cudasim::enqueue(handle->stream, "cublasSgemmStridedBatched", [=]() {
    for (long long i = 0; i < batchCount; ++i) {
      gemm_one(ta, tb, m, n, k, a_scale, instance(A, i, strideA), lda, instance(B, i, strideB), ldb, b_scale,
               instance(C, i, strideC), ldc);
    }
  });
  return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"

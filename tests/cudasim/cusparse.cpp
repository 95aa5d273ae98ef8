// cuSPARSE's generic SpMM on the CPU: C (m, n) = alpha * A (m, k) * B (k, n) +
// beta * C for A in CSR (32-bit indices, zero-based, float values) and B, C
// dense in row-major (element (i, j) at i * ld + j, ld >= cols) or
// column-major (at i + j * ld, ld >= rows) order, as the cuSPARSE
// documentation defines the descriptors. Each C element sums its row's
// non-zeros in index order in float (deterministic, like CSR_ALG3). The CSR
// arrays must be a valid matrix in device memory: an index past k or a row
// pointer past nnz is an illegal address, as it would read out of bounds on a
// GPU.
#include <cusparse.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "cudasim/sim.hpp"

struct cusparseContext {
  cudaStream_t stream = nullptr;
};

struct cusparseSpMatDescr {
  int64_t rows = 0, cols = 0, nnz = 0;
  const int32_t* indptr = nullptr;
  const int32_t* indices = nullptr;
  const float* values = nullptr;
};

struct cusparseDnMatDescr {
  int64_t rows = 0, cols = 0, ld = 0;
  float* values = nullptr;
  cusparseOrder_t order = CUSPARSE_ORDER_ROW;
  int64_t offset(int64_t i, int64_t j) const { return order == CUSPARSE_ORDER_ROW ? i * ld + j : i + j * ld; }
  int64_t extent() const {  // elements spanned
    if (rows == 0 || cols == 0) return 0;
    return order == CUSPARSE_ORDER_ROW ? (rows - 1) * ld + cols : (cols - 1) * ld + rows;
  }
};

namespace {

// CUDASIM_SPMM_NOT_SUPPORTED=1: every SpMM answers NOT_SUPPORTED; =invalid:
// INVALID_VALUE, which is what some algorithms answer for a dense layout they
// do not take (NVIDIA/CUDALibrarySamples#97: "matrix B must be in
// column-major order").
cusparseStatus_t refusal_by_request() {
  const char* v = std::getenv("CUDASIM_SPMM_NOT_SUPPORTED");
  if (v == nullptr) return CUSPARSE_STATUS_SUCCESS;
  if (std::strcmp(v, "1") == 0) return CUSPARSE_STATUS_NOT_SUPPORTED;
  if (std::strcmp(v, "invalid") == 0) return CUSPARSE_STATUS_INVALID_VALUE;
  return CUSPARSE_STATUS_SUCCESS;
}

cusparseStatus_t make_dense(cusparseDnMatDescr** out, int64_t rows, int64_t cols, int64_t ld, const void* values,
                            cudaDataType type, cusparseOrder_t order) {
  if (out == nullptr || rows < 0 || cols < 0 || type != CUDA_R_32F ||
      (order != CUSPARSE_ORDER_ROW && order != CUSPARSE_ORDER_COL) ||
      ld < (order == CUSPARSE_ORDER_ROW ? cols : rows) || (values == nullptr && rows > 0 && cols > 0))
    return CUSPARSE_STATUS_INVALID_VALUE;
  auto* d = new cusparseDnMatDescr{};
  d->rows = rows;
  d->cols = cols;
  d->ld = ld;
  d->values = static_cast<float*>(const_cast<void*>(values));
  d->order = order;
  *out = d;
  cudasim::count_object();
  return CUSPARSE_STATUS_SUCCESS;
}

size_t spmm_buffer_bytes(const cusparseSpMatDescr& a) { return static_cast<size_t>(a.rows + 1) * 16; }

cusparseStatus_t check_spmm(cusparseHandle_t handle, cusparseOperation_t op_a, cusparseOperation_t op_b,
                            const void* alpha, const cusparseSpMatDescr* a, const cusparseDnMatDescr* b,
                            const void* beta, const cusparseDnMatDescr* c, cudaDataType compute_type,
                            cusparseSpMMAlg_t alg) {
  if (handle == nullptr) return CUSPARSE_STATUS_NOT_INITIALIZED;
  if (alpha == nullptr || beta == nullptr || a == nullptr || b == nullptr || c == nullptr ||
      compute_type != CUDA_R_32F)
    return CUSPARSE_STATUS_INVALID_VALUE;
  if (alg != CUSPARSE_SPMM_ALG_DEFAULT && alg != CUSPARSE_SPMM_CSR_ALG1 && alg != CUSPARSE_SPMM_CSR_ALG2 &&
      alg != CUSPARSE_SPMM_CSR_ALG3)
    return CUSPARSE_STATUS_INVALID_VALUE;
  if (op_a != CUSPARSE_OPERATION_NON_TRANSPOSE || op_b != CUSPARSE_OPERATION_NON_TRANSPOSE)
    return CUSPARSE_STATUS_NOT_SUPPORTED;
  if (const cusparseStatus_t refused = refusal_by_request(); refused != CUSPARSE_STATUS_SUCCESS) return refused;
  if (a->cols != b->rows || a->rows != c->rows || b->cols != c->cols) return CUSPARSE_STATUS_INVALID_VALUE;
  return CUSPARSE_STATUS_SUCCESS;
}

}  // namespace

extern "C" {

cusparseStatus_t cusparseCreate(cusparseHandle_t* handle) {
  if (handle == nullptr) return CUSPARSE_STATUS_INVALID_VALUE;
  *handle = new cusparseContext{};
  cudasim::count_object();
  return CUSPARSE_STATUS_SUCCESS;
}

cusparseStatus_t cusparseDestroy(cusparseHandle_t handle) {
  if (handle == nullptr) return CUSPARSE_STATUS_NOT_INITIALIZED;
  cudasim::drain();
  delete handle;
  return CUSPARSE_STATUS_SUCCESS;
}

cusparseStatus_t cusparseSetStream(cusparseHandle_t handle, cudaStream_t stream) {
  if (handle == nullptr) return CUSPARSE_STATUS_NOT_INITIALIZED;
  handle->stream = stream;
  return CUSPARSE_STATUS_SUCCESS;
}

const char* cusparseGetErrorString(cusparseStatus_t status) {
  switch (status) {
    case CUSPARSE_STATUS_SUCCESS: return "success";
    case CUSPARSE_STATUS_NOT_INITIALIZED: return "initialization error";
    case CUSPARSE_STATUS_ALLOC_FAILED: return "out of memory";
    case CUSPARSE_STATUS_INVALID_VALUE: return "invalid value";
    case CUSPARSE_STATUS_ARCH_MISMATCH: return "architecture mismatch";
    case CUSPARSE_STATUS_EXECUTION_FAILED: return "execution failed";
    case CUSPARSE_STATUS_INTERNAL_ERROR: return "internal operation failed";
    case CUSPARSE_STATUS_NOT_SUPPORTED: return "operation not supported";
    case CUSPARSE_STATUS_INSUFFICIENT_RESOURCES: return "insufficient resources";
  }
  return "unknown error";
}

cusparseStatus_t cusparseCreateCsr(cusparseSpMatDescr_t* descr, int64_t rows, int64_t cols, int64_t nnz,
                                   void* row_offsets, void* col_indices, void* values,
                                   cusparseIndexType_t row_offsets_type, cusparseIndexType_t col_indices_type,
                                   cusparseIndexBase_t base, cudaDataType value_type) {
  if (descr == nullptr || rows < 0 || cols < 0 || nnz < 0 || row_offsets_type != CUSPARSE_INDEX_32I ||
      col_indices_type != CUSPARSE_INDEX_32I || base != CUSPARSE_INDEX_BASE_ZERO || value_type != CUDA_R_32F ||
      (rows > 0 && row_offsets == nullptr) || (nnz > 0 && (col_indices == nullptr || values == nullptr)))
    return CUSPARSE_STATUS_INVALID_VALUE;
  auto* d = new cusparseSpMatDescr{};
  d->rows = rows;
  d->cols = cols;
  d->nnz = nnz;
  d->indptr = static_cast<const int32_t*>(row_offsets);
  d->indices = static_cast<const int32_t*>(col_indices);
  d->values = static_cast<const float*>(values);
  *descr = d;
  cudasim::count_object();
  return CUSPARSE_STATUS_SUCCESS;
}

cusparseStatus_t cusparseDestroySpMat(cusparseConstSpMatDescr_t descr) {
  delete descr;
  return CUSPARSE_STATUS_SUCCESS;
}

cusparseStatus_t cusparseCreateDnMat(cusparseDnMatDescr_t* descr, int64_t rows, int64_t cols, int64_t ld, void* values,
                                     cudaDataType value_type, cusparseOrder_t order) {
  return make_dense(descr, rows, cols, ld, values, value_type, order);
}

cusparseStatus_t cusparseCreateConstDnMat(cusparseConstDnMatDescr_t* descr, int64_t rows, int64_t cols, int64_t ld,
                                          const void* values, cudaDataType value_type, cusparseOrder_t order) {
  cusparseDnMatDescr* d = nullptr;
  const cusparseStatus_t st = make_dense(&d, rows, cols, ld, values, value_type, order);
  if (st == CUSPARSE_STATUS_SUCCESS) *descr = d;
  return st;
}

cusparseStatus_t cusparseDestroyDnMat(cusparseConstDnMatDescr_t descr) {
  delete descr;
  return CUSPARSE_STATUS_SUCCESS;
}

cusparseStatus_t cusparseSpMM_bufferSize(cusparseHandle_t handle, cusparseOperation_t op_a, cusparseOperation_t op_b,
                                         const void* alpha, cusparseConstSpMatDescr_t a, cusparseConstDnMatDescr_t b,
                                         const void* beta, cusparseDnMatDescr_t c, cudaDataType compute_type,
                                         cusparseSpMMAlg_t alg, size_t* buffer_size) {
  if (buffer_size == nullptr) return CUSPARSE_STATUS_INVALID_VALUE;
  const cusparseStatus_t st = check_spmm(handle, op_a, op_b, alpha, a, b, beta, c, compute_type, alg);
  if (st != CUSPARSE_STATUS_SUCCESS) return st;
  *buffer_size = spmm_buffer_bytes(*a);  // not zero, so a caller that ignores it is caught
  return CUSPARSE_STATUS_SUCCESS;
}

// The checks of a call that runs on the stream with the external buffer:
// the arguments, a context still usable, and the buffer bufferSize asked for.
cusparseStatus_t check_spmm_call(const char* what, cusparseHandle_t handle, cusparseOperation_t op_a,
                                 cusparseOperation_t op_b, const void* alpha, const cusparseSpMatDescr* a,
                                 const cusparseDnMatDescr* b, const void* beta, const cusparseDnMatDescr* c,
                                 cudaDataType compute_type, cusparseSpMMAlg_t alg, const void* external_buffer) {
  const cusparseStatus_t st = check_spmm(handle, op_a, op_b, alpha, a, b, beta, c, compute_type, alg);
  if (st != CUSPARSE_STATUS_SUCCESS) return st;
  if (cudasim::sticky_error() != cudaSuccess) return CUSPARSE_STATUS_EXECUTION_FAILED;
  if (!cudasim::is_device_range(external_buffer, spmm_buffer_bytes(*a))) {
    cudasim::fault(cudaErrorIllegalAddress, std::string(what) + ": the external buffer is not device memory of the "
                                                                "size cusparseSpMM_bufferSize gave");
    return CUSPARSE_STATUS_EXECUTION_FAILED;
  }
  return CUSPARSE_STATUS_SUCCESS;
}

// Analyses A for the products that follow, into the external buffer (which
// later cusparseSpMM calls must be given). Its effect on speed is not
// simulated: here it checks its arguments and the buffer, and queues an
// operation that does nothing else.
cusparseStatus_t cusparseSpMM_preprocess(cusparseHandle_t handle, cusparseOperation_t op_a, cusparseOperation_t op_b,
                                         const void* alpha, cusparseConstSpMatDescr_t a, cusparseConstDnMatDescr_t b,
                                         const void* beta, cusparseDnMatDescr_t c, cudaDataType compute_type,
                                         cusparseSpMMAlg_t alg, void* external_buffer) {
  const cusparseStatus_t st =
      check_spmm_call("cusparseSpMM_preprocess", handle, op_a, op_b, alpha, a, b, beta, c, compute_type, alg,
                      external_buffer);
  if (st != CUSPARSE_STATUS_SUCCESS) return st;
  cudasim::enqueue(handle->stream, "cusparseSpMM_preprocess", []() {});
  return CUSPARSE_STATUS_SUCCESS;
}

cusparseStatus_t cusparseSpMM(cusparseHandle_t handle, cusparseOperation_t op_a, cusparseOperation_t op_b,
                              const void* alpha, cusparseConstSpMatDescr_t a, cusparseConstDnMatDescr_t b,
                              const void* beta, cusparseDnMatDescr_t c, cudaDataType compute_type,
                              cusparseSpMMAlg_t alg, void* external_buffer) {
  const cusparseStatus_t st = check_spmm_call("cusparseSpMM", handle, op_a, op_b, alpha, a, b, beta, c,
                                              compute_type, alg, external_buffer);
  if (st != CUSPARSE_STATUS_SUCCESS) return st;
  const cusparseSpMatDescr sa = *a;  // descriptors copied: the caller may destroy them once this returns
  const cusparseDnMatDescr db = *b, dc = *c;
  const float a_scale = *static_cast<const float*>(alpha), b_scale = *static_cast<const float*>(beta);
  cudasim::enqueue(handle->stream, "cusparseSpMM", [sa, db, dc, a_scale, b_scale]() {
    const auto fail = [](const std::string& what) {
      cudasim::fault(cudaErrorIllegalAddress, "cusparseSpMM: " + what);
    };
    if (sa.rows > 0 && !cudasim::is_device_range(sa.indptr, static_cast<size_t>(sa.rows + 1) * sizeof(int32_t)))
      return fail("the CSR row offsets are not in device memory");
    if (sa.nnz > 0 && (!cudasim::is_device_range(sa.indices, static_cast<size_t>(sa.nnz) * sizeof(int32_t)) ||
                       !cudasim::is_device_range(sa.values, static_cast<size_t>(sa.nnz) * sizeof(float))))
      return fail("the CSR indices or values are not in device memory");
    if (!cudasim::is_device_range(db.values, static_cast<size_t>(db.extent()) * sizeof(float)) ||
        !cudasim::is_device_range(dc.values, static_cast<size_t>(dc.extent()) * sizeof(float)))
      return fail("B or C reaches outside device memory");
    for (int64_t i = 0; i < sa.rows; ++i) {
      const int32_t begin = sa.indptr[i], end = sa.indptr[i + 1];
      if (begin < 0 || end < begin || end > sa.nnz) return fail("row " + std::to_string(i) + "'s offsets are invalid");
      for (int32_t e = begin; e < end; ++e)
        if (sa.indices[e] < 0 || sa.indices[e] >= sa.cols)
          return fail("column index " + std::to_string(sa.indices[e]) + " outside [0, " + std::to_string(sa.cols) + ")");
      for (int64_t j = 0; j < dc.cols; ++j) {
        float acc = 0.0f;
        for (int32_t e = begin; e < end; ++e) acc += sa.values[e] * db.values[db.offset(sa.indices[e], j)];
        float& out = dc.values[dc.offset(i, j)];
        out = b_scale == 0.0f ? a_scale * acc : a_scale * acc + b_scale * out;
      }
    }
  });
  return CUSPARSE_STATUS_SUCCESS;
}

}  // extern "C"

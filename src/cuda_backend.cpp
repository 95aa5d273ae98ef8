// The CUDA backend's host side: the device, its stream, cuBLAS and cuSPARSE
// handles bound to that stream, device memory, and the launchers of the
// hand-written kernels (kernels/). Every op is enqueued on the backend's own
// non-blocking stream (nothing on the legacy default stream), and no op
// allocates once its workspaces have grown to the run's sizes, so an epoch can
// later be captured into a CUDA graph.
//
// Compiled by the host compiler: only the C runtime API and the library
// headers, no CUDA C++.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cusparse.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "adam.hpp"
#include "check.hpp"
#include "classifier.hpp"
#include "elementwise.hpp"
#include "gcn/backend.hpp"
#include "gcn/devices.hpp"
#include "gcn/error.hpp"
#include "op_checks.hpp"
#include "reduce.hpp"
#include "spmm.hpp"

#define CUBLAS_CHECK(call) \
  GCN_CHECK_STATUS("cuBLAS", call, cublasStatus_t, CUBLAS_STATUS_SUCCESS, cublasGetStatusString)
#define CUSPARSE_CHECK(call) \
  GCN_CHECK_STATUS("cuSPARSE", call, cusparseStatus_t, CUSPARSE_STATUS_SUCCESS, cusparseGetErrorString)

namespace gcn {
namespace {

using detail::require;
using detail::shape;

// ---- RAII wrappers (move-only; destructors log, never throw) ---------------

template <class T, class Destroy>
struct HandleDeleter {
  void operator()(T* p) const noexcept {
    if (p != nullptr) Destroy{}(p);
  }
};

struct DestroyStream {
  void operator()(CUstream_st* s) const noexcept {
    if (cudaStreamDestroy(s) != cudaSuccess) spdlog::warn("cudaStreamDestroy failed");
  }
};
struct DestroyCublas {
  void operator()(cublasContext* h) const noexcept {
    if (cublasDestroy(h) != CUBLAS_STATUS_SUCCESS) spdlog::warn("cublasDestroy failed");
  }
};
struct DestroyCusparse {
  void operator()(cusparseContext* h) const noexcept {
    if (cusparseDestroy(h) != CUSPARSE_STATUS_SUCCESS) spdlog::warn("cusparseDestroy failed");
  }
};
struct DestroySpMat {
  void operator()(cusparseSpMatDescr* d) const noexcept {
    if (cusparseDestroySpMat(d) != CUSPARSE_STATUS_SUCCESS) spdlog::warn("cusparseDestroySpMat failed");
  }
};
struct DestroyDnMat {
  void operator()(const cusparseDnMatDescr* d) const noexcept {
    if (cusparseDestroyDnMat(d) != CUSPARSE_STATUS_SUCCESS) spdlog::warn("cusparseDestroyDnMat failed");
  }
};

using StreamPtr = std::unique_ptr<CUstream_st, HandleDeleter<CUstream_st, DestroyStream>>;
using CublasPtr = std::unique_ptr<cublasContext, HandleDeleter<cublasContext, DestroyCublas>>;
using CusparsePtr = std::unique_ptr<cusparseContext, HandleDeleter<cusparseContext, DestroyCusparse>>;
using SpMatPtr = std::unique_ptr<cusparseSpMatDescr, HandleDeleter<cusparseSpMatDescr, DestroySpMat>>;
using ConstDnMatPtr =
    std::unique_ptr<const cusparseDnMatDescr, HandleDeleter<const cusparseDnMatDescr, DestroyDnMat>>;
using DnMatPtr = std::unique_ptr<cusparseDnMatDescr, HandleDeleter<cusparseDnMatDescr, DestroyDnMat>>;

void* device_malloc(std::size_t bytes, int device) {
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, std::max<std::size_t>(bytes, 1));
  if (err != cudaSuccess) {
    (void)cudaGetLastError();  // an allocation failure is not sticky: clear it for the next check
    std::size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) (void)cudaGetLastError();
    constexpr double kMiB = 1024.0 * 1024.0;
    throw DeviceError(fmt::format(
        "cuda:{}: cannot allocate {} bytes ({:.1f} MiB) of device memory: {} ({:.1f} MiB free of {:.1f} MiB)",
        device, bytes, static_cast<double>(bytes) / kMiB, cudaGetErrorString(err),
        static_cast<double>(free_bytes) / kMiB, static_cast<double>(total_bytes) / kMiB));
  }
  return p;
}

void device_free(void* p) noexcept {
  if (p == nullptr) return;
  const cudaError_t err = cudaFree(p);
  if (err != cudaSuccess) spdlog::warn("cudaFree failed: {}", cudaGetErrorString(err));
}

// Owning device memory.
class DeviceMemory {
 public:
  DeviceMemory() = default;
  DeviceMemory(std::size_t bytes, int device) : ptr_(device_malloc(bytes, device)), bytes_(bytes) {}
  ~DeviceMemory() { device_free(ptr_); }
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  DeviceMemory(DeviceMemory&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  DeviceMemory& operator=(DeviceMemory&& o) noexcept {
    if (this != &o) {
      device_free(ptr_);
      ptr_ = std::exchange(o.ptr_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  void* get() const { return ptr_; }
  std::size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

// cuSPARSE's setup for one product A·B -> C with row-major B and C: the dense
// descriptors and the workspace size cusparseSpMM_bufferSize gave, or that
// the algorithm refused the shape (NOT_SUPPORTED). Made on the product's
// first call and reused by every later one: an epoch multiplies the same
// buffers each time, so no descriptor is created per epoch.
struct SpmmPlan {
  ConstDnMatPtr b;
  DnMatPtr c;
  std::size_t workspace = 0;
  bool supported = true;
};

// A CSR matrix on the device with its cuSPARSE descriptor, and the plans of
// the products it takes part in. The descriptor holds raw pointers into the
// three arrays, which live exactly as long.
class CudaSparse final : public SparseMatrix {
 public:
  CudaSparse(const CsrMatrix& host, int device, cudaStream_t stream)
      : SparseMatrix(host.n_rows, host.n_cols, host.nnz()),
        indptr_(host.indptr.size() * sizeof(int32_t), device),
        indices_(host.indices.size() * sizeof(int32_t), device),
        values_(host.values.size() * sizeof(float), device) {
    copy(indptr_, host.indptr.data(), host.indptr.size() * sizeof(int32_t), stream);
    copy(indices_, host.indices.data(), host.indices.size() * sizeof(int32_t), stream);
    copy(values_, host.values.data(), host.values.size() * sizeof(float), stream);
    CUDA_CHECK(cudaStreamSynchronize(stream));  // the host vectors may go once we return
    // No descriptor for an empty product: spmm writes zeros itself.
    if (rows() > 0 && cols() > 0 && nnz() > 0) {
      cusparseSpMatDescr_t d = nullptr;
      CUSPARSE_CHECK(cusparseCreateCsr(&d, rows(), cols(), nnz(), indptr_.get(), indices_.get(), values_.get(),
                                       CUSPARSE_INDEX_32I, CUSPARSE_INDEX_32I, CUSPARSE_INDEX_BASE_ZERO,
                                       CUDA_R_32F));
      descr_.reset(d);
    }
  }
  cusparseSpMatDescr_t descr() const { return descr_.get(); }
  const int32_t* indptr() const { return static_cast<const int32_t*>(indptr_.get()); }
  const int32_t* indices() const { return static_cast<const int32_t*>(indices_.get()); }
  const float* values() const { return static_cast<const float*>(values_.get()); }

  // The plan of the product of this matrix with B (n columns) into C under
  // alg, or nullptr before its first call. Plans live with the matrix they
  // were made for. A descriptor holds the buffer's address and shape, and a
  // key holds both, so a buffer freed and another allocated at the same
  // address with the same shape finds a plan that describes it exactly.
  SpmmPlan* find_plan(const float* b, const float* c, int64_t n, cusparseSpMMAlg_t alg) const {
    const auto it = plans_.find(PlanKey{b, c, n, alg});
    return it == plans_.end() ? nullptr : &it->second;
  }
  SpmmPlan& keep_plan(const float* b, const float* c, int64_t n, cusparseSpMMAlg_t alg, SpmmPlan plan) const {
    // Training uses a handful; a caller cycling through buffers (a benchmark)
    // starts over rather than growing without bound.
    if (plans_.size() >= kMaxPlans) plans_.clear();
    return plans_[PlanKey{b, c, n, alg}] = std::move(plan);
  }

 private:
  using PlanKey = std::tuple<const float*, const float*, int64_t, cusparseSpMMAlg_t>;
  static constexpr std::size_t kMaxPlans = 64;

  static void copy(const DeviceMemory& dst, const void* src, std::size_t bytes, cudaStream_t stream) {
    if (bytes > 0) CUDA_CHECK(cudaMemcpyAsync(dst.get(), src, bytes, cudaMemcpyHostToDevice, stream));
  }

  DeviceMemory indptr_;   // (rows + 1) int32
  DeviceMemory indices_;  // (nnz) int32
  DeviceMemory values_;   // (nnz) float
  SpMatPtr descr_;
  mutable std::map<PlanKey, SpmmPlan> plans_;
};

// Peak DRAM bandwidth of the GPUs we benchmark on, from NVIDIA's data sheets
// (the CUDA 13 runtime no longer reports the memory clock). 0 when unknown.
double known_peak_bandwidth_gbs(const std::string& name) {
  struct Entry {
    const char* pattern;
    double gbs;
  };
  static const Entry kTable[] = {
      {"H200", 4800.0},      {"H100 NVL", 3900.0}, {"H100 PCIe", 2000.0}, {"H100", 3350.0},
      {"A100-SXM4-80GB", 2039.0}, {"A100 80GB PCIe", 1935.0}, {"A100", 1555.0},
      {"L40S", 864.0},       {"L4", 300.0},        {"RTX 4090", 1008.0},  {"RTX 3090", 936.0},
      {"V100", 900.0},       {"T4", 320.0},
  };
  for (const Entry& e : kTable) {
    if (name.find(e.pattern) != std::string::npos) return e.gbs;
  }
  return 0.0;
}

// cuBLAS wants a workspace of its own under graph capture (it would otherwise
// allocate); 32 MiB is NVIDIA's recommendation for Hopper.
constexpr std::size_t kCublasWorkspaceBytes = std::size_t{32} << 20;

// The SpMM implementation, from $GCN_SPMM_ALG: cuSPARSE's CSR_ALG3 (the
// default), CSR_ALG2 or CSR_ALG1 (for comparisons in gcn-bench: NVIDIA does
// not promise them bit-wise reproducible), or our own kernel
// (kernels/spmm.cu).
enum class SpmmAlg { kAlg3, kAlg2, kAlg1, kKernel };

const char* spmm_alg_name(SpmmAlg alg) {
  switch (alg) {
    case SpmmAlg::kAlg3: return "CSR_ALG3";
    case SpmmAlg::kAlg2: return "CSR_ALG2";
    case SpmmAlg::kAlg1: return "CSR_ALG1";
    case SpmmAlg::kKernel: return "kernel";
  }
  return "?";
}

SpmmAlg spmm_alg_from_env() {
  const char* env = std::getenv("GCN_SPMM_ALG");
  if (env == nullptr || *env == '\0') return SpmmAlg::kAlg3;
  const std::string v = env;
  if (v == "alg3") return SpmmAlg::kAlg3;
  if (v == "alg2") return SpmmAlg::kAlg2;
  if (v == "alg1") return SpmmAlg::kAlg1;
  if (v == "kernel") return SpmmAlg::kKernel;
  throw UsageError(fmt::format("GCN_SPMM_ALG={}: use alg3 (cuSPARSE CSR_ALG3, the default), alg2, alg1 or kernel", v));
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device) {
    CUDA_CHECK(cudaSetDevice(device_));
    cudaDeviceProp prop{};
    CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
    name_ = prop.name;
    n_sms_ = prop.multiProcessorCount;
    total_bytes_ = prop.totalGlobalMem;

    cudaStream_t s = nullptr;
    CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    stream_.reset(s);

    cublasHandle_t cb = nullptr;
    CUBLAS_CHECK(cublasCreate(&cb));
    cublas_.reset(cb);
    CUBLAS_CHECK(cublasSetStream(cublas_.get(), stream_.get()));
    // Plain FP32 (no TF32): the results must match the CPU's float math.
    CUBLAS_CHECK(cublasSetMathMode(cublas_.get(), CUBLAS_DEFAULT_MATH));
    cublas_workspace_ = DeviceMemory(kCublasWorkspaceBytes, device_);
    account(static_cast<int64_t>(kCublasWorkspaceBytes));
    CUBLAS_CHECK(cublasSetWorkspace(cublas_.get(), cublas_workspace_.get(), cublas_workspace_.bytes()));

    spmm_alg_ = spmm_alg_from_env();

    cusparseHandle_t sp = nullptr;
    CUSPARSE_CHECK(cusparseCreate(&sp));
    cusparse_.reset(sp);
    CUSPARSE_CHECK(cusparseSetStream(cusparse_.get(), stream_.get()));
  }

  ~CudaBackend() override {
    for (cudaEvent_t e : events_) {
      if (cudaEventDestroy(e) != cudaSuccess) spdlog::warn("cudaEventDestroy failed");
    }
    // Queued work may still use the workspaces freed below.
    if (stream_ && cudaStreamSynchronize(stream_.get()) != cudaSuccess) {
      spdlog::warn("cuda:{}: stream synchronisation failed at shutdown", device_);
    }
  }

  DeviceKind kind() const override { return DeviceKind::kCuda; }
  std::string describe() const override {
    return fmt::format("cuda:{} {} ({} SMs, {:.1f} GiB, SpMM {})", device_, name_, n_sms_,
                       static_cast<double>(total_bytes_) / (1024.0 * 1024.0 * 1024.0), spmm_alg_name(spmm_alg_));
  }

  // ---- memory ---------------------------------------------------------------
  void* allocate(std::size_t bytes) override {
    void* p = device_malloc(bytes, device_);
    sizes_[p] = bytes;
    account(static_cast<int64_t>(bytes));
    return p;
  }
  void deallocate(void* ptr) noexcept override {
    const auto it = sizes_.find(ptr);
    if (it != sizes_.end()) {
      account(-static_cast<int64_t>(it->second));
      sizes_.erase(it);
    }
    device_free(ptr);
  }
  void upload(void* dst, const void* host_src, std::size_t bytes) override {
    if (bytes == 0) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream_.get()));
    CUDA_CHECK(cudaStreamSynchronize(stream_.get()));  // host_src may be freed once we return
  }
  void download(void* host_dst, const void* src, std::size_t bytes) override {
    if (bytes == 0) {
      synchronize();
      return;
    }
    CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream_.get()));
    CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
  }
  void fill_zero(void* dst, std::size_t bytes) override {
    if (bytes > 0) CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, stream_.get()));
  }
  void copy(void* dst, const void* src, std::size_t bytes) override {
    if (bytes > 0) CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_.get()));
  }
  void synchronize() override { CUDA_CHECK(cudaStreamSynchronize(stream_.get())); }

  // ---- sparse ---------------------------------------------------------------
  std::unique_ptr<SparseMatrix> upload_csr(const CsrMatrix& host) override {
    host.validate("upload_csr");
    return std::make_unique<CudaSparse>(host, device_, stream_.get());
  }

  void spmm(const SparseMatrix& a_base, ConstMatRef b, MatRef c) override {
    const auto* a = dynamic_cast<const CudaSparse*>(&a_base);
    require(a != nullptr, "spmm", "sparse matrix belongs to another backend");
    require(a->cols() == b.rows && c.rows == a->rows() && c.cols == b.cols, "spmm",
            [&] { return fmt::format("shapes ({}, {}) x {} -> {}", a->rows(), a->cols(), shape(b), shape(c)); });
    if (c.size() == 0) return;
    if (spmm_alg_ == SpmmAlg::kKernel) {
      spmm_kernel(*a, b, c);  // writes every element of c
      return;
    }
    if (a->descr() == nullptr) {  // no non-zeros: C = 0
      fill_zero(c.data, static_cast<std::size_t>(c.size()) * sizeof(float));
      return;
    }

    // CSR_ALG3 by default: of cuSPARSE's CSR algorithms it is the one NVIDIA
    // names as bit-wise reproducible run to run (CSR_ALG1 and CSR_ALG2 "may
    // produce slightly different results"), and we promise bit-identical
    // reruns. A shape or layout it refuses (NOT_SUPPORTED) goes to our own
    // kernel, also deterministic, never to ALG1/ALG2 behind the user's back.
    const float alpha = 1.0f, beta = 0.0f;
    const cusparseSpMMAlg_t alg = spmm_alg_ == SpmmAlg::kAlg1   ? CUSPARSE_SPMM_CSR_ALG1
                                  : spmm_alg_ == SpmmAlg::kAlg2 ? CUSPARSE_SPMM_CSR_ALG2
                                                                : CUSPARSE_SPMM_CSR_ALG3;
    const SpmmPlan* plan = a->find_plan(b.data, c.data, c.cols, alg);
    if (plan == nullptr) plan = &a->keep_plan(b.data, c.data, c.cols, alg, make_spmm_plan(*a, b, c, alg));
    if (!plan->supported) {
      if (!spmm_fallback_logged_) {
        spdlog::warn("cuSPARSE SpMM {} does not support a ({}, {}) x ({}, {}) row-major product; using gcn-train's "
                     "own SpMM kernel for such products",
                     spmm_alg_name(spmm_alg_), a->rows(), a->cols(), b.rows, b.cols);
        spmm_fallback_logged_ = true;
      }
      spmm_kernel(*a, b, c);
      return;
    }
    // cuSPARSE documents beta == 0 as overwriting C, but zeroing first costs
    // one memset and makes sure no stale NaN in C can leak through 0 * NaN.
    fill_zero(c.data, static_cast<std::size_t>(c.size()) * sizeof(float));
    void* workspace = grow(spmm_workspace_, plan->workspace);
    CUSPARSE_CHECK(cusparseSpMM(cusparse_.get(), CUSPARSE_OPERATION_NON_TRANSPOSE, CUSPARSE_OPERATION_NON_TRANSPOSE,
                                &alpha, a->descr(), plan->b.get(), &beta, plan->c.get(), CUDA_R_32F, alg, workspace));
  }

  SpmmPlan make_spmm_plan(const CudaSparse& a, ConstMatRef b, MatRef c, cusparseSpMMAlg_t alg) {
    SpmmPlan plan;
    cusparseConstDnMatDescr_t b_raw = nullptr;
    CUSPARSE_CHECK(cusparseCreateConstDnMat(&b_raw, b.rows, b.cols, b.cols, b.data, CUDA_R_32F, CUSPARSE_ORDER_ROW));
    plan.b.reset(b_raw);
    cusparseDnMatDescr_t c_raw = nullptr;
    CUSPARSE_CHECK(cusparseCreateDnMat(&c_raw, c.rows, c.cols, c.cols, c.data, CUDA_R_32F, CUSPARSE_ORDER_ROW));
    plan.c.reset(c_raw);
    const float alpha = 1.0f, beta = 0.0f;
    const cusparseStatus_t st =
        cusparseSpMM_bufferSize(cusparse_.get(), CUSPARSE_OPERATION_NON_TRANSPOSE, CUSPARSE_OPERATION_NON_TRANSPOSE,
                                &alpha, a.descr(), plan.b.get(), &beta, plan.c.get(), CUDA_R_32F, alg, &plan.workspace);
    if (st == CUSPARSE_STATUS_NOT_SUPPORTED) {
      plan.supported = false;
    } else {
      CUSPARSE_CHECK(st);
    }
    return plan;
  }

  void spmm_kernel(const CudaSparse& a, ConstMatRef b, MatRef c) {
    kernels::launch_csr_spmm(a.indptr(), a.indices(), a.values(), c.rows, c.cols, b.data, c.data, stream_.get());
  }

  // ---- dense ----------------------------------------------------------------
  void gemm(ConstMatRef a, bool trans_a, ConstMatRef b, bool trans_b, MatRef c) override {
    const detail::GemmDims dims = detail::gemm_dims(a, trans_a, b, trans_b, c);
    const int64_t m = dims.m, n = dims.n, k = dims.k;
    require(m <= INT_MAX && n <= INT_MAX && k <= INT_MAX && a.cols <= INT_MAX && b.cols <= INT_MAX, "gemm",
            "dimensions beyond 32-bit cuBLAS sizes");
    if (m == 0 || n == 0) return;
    if (k == 0) {
      fill_zero(c.data, static_cast<std::size_t>(c.size()) * sizeof(float));
      return;
    }
    // cuBLAS is column-major and a row-major matrix is its column-major
    // transpose, so compute Cᵀ (n, m) = op(B)ᵀ · op(A)ᵀ: B comes first, each
    // operand keeps its own transpose flag, and every leading dimension is
    // the stored row length (cols).
    const float alpha = 1.0f, beta = 0.0f;
    CUBLAS_CHECK(cublasSgemm(cublas_.get(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                             static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &alpha, b.data,
                             static_cast<int>(b.cols), a.data, static_cast<int>(a.cols), &beta, c.data,
                             static_cast<int>(n)));
  }

  void add_bias(MatRef x, const float* bias) override {
    kernels::launch_add_bias(x.data, bias, x.rows, x.cols, stream_.get());
  }

  void column_sum(ConstMatRef x, float* out) override {
    const int64_t n_partial = kernels::column_sum_scratch(x.rows, x.cols);
    auto* partial = static_cast<double*>(grow(scratch_, static_cast<std::size_t>(n_partial) * sizeof(double)));
    kernels::launch_column_sum(x.data, x.rows, x.cols, out, partial, stream_.get());
  }

  void relu_dropout_forward(ConstMatRef x, MatRef y, float p, uint64_t seed, uint64_t stream) override {
    require(x.rows == y.rows && x.cols == y.cols, "relu_dropout_forward", [&] { return shape(x) + " -> " + shape(y); });
    require(p >= 0.0f && p < 1.0f, "relu_dropout_forward", [&] { return fmt::format("p = {} outside [0, 1)", p); });
    kernels::launch_relu_dropout_forward(x.data, y.data, x.size(), p, seed, stream, stream_.get());
  }

  void relu_dropout_backward(ConstMatRef dy, ConstMatRef y, MatRef dx, float p) override {
    require(dy.size() == y.size() && dx.size() == y.size(), "relu_dropout_backward",
            [&] { return shape(dy) + ", " + shape(y) + " -> " + shape(dx); });
    require(p >= 0.0f && p < 1.0f, "relu_dropout_backward", [&] { return fmt::format("p = {} outside [0, 1)", p); });
    kernels::launch_relu_dropout_backward(dy.data, y.data, dx.data, y.size(), p, stream_.get());
  }

  // ---- classifier -----------------------------------------------------------
  void log_softmax(ConstMatRef x, MatRef y) override {
    require(x.rows == y.rows && x.cols == y.cols, "log_softmax", [&] { return shape(x) + " -> " + shape(y); });
    kernels::launch_log_softmax(x.data, y.data, x.rows, x.cols, stream_.get());
  }

  void log_softmax_nll(ConstMatRef logits, const int32_t* labels, const uint8_t* split, uint8_t mask_bit,
                       int64_t n_masked, float* loss_out, float* grad) override {
    require(n_masked >= 0 && n_masked <= logits.rows, "log_softmax_nll",
            [&] { return fmt::format("n_masked = {} for {} rows", n_masked, logits.rows); });
    auto* row_loss = static_cast<float*>(grow(scratch_, static_cast<std::size_t>(logits.rows) * sizeof(float)));
    kernels::launch_log_softmax_nll(logits.data, labels, split, mask_bit, n_masked, logits.rows, logits.cols,
                                    row_loss, loss_out, grad, stream_.get());
  }

  void nll_loss(ConstMatRef log_probs, const int32_t* labels, const uint8_t* split, uint8_t mask_bit,
                int64_t n_masked, float* loss_out, float* grad) override {
    require(n_masked >= 0 && n_masked <= log_probs.rows, "nll_loss",
            [&] { return fmt::format("n_masked = {} for {} rows", n_masked, log_probs.rows); });
    auto* row_loss = static_cast<float*>(grow(scratch_, static_cast<std::size_t>(log_probs.rows) * sizeof(float)));
    kernels::launch_nll_loss(log_probs.data, labels, split, mask_bit, n_masked, log_probs.rows, log_probs.cols,
                             row_loss, loss_out, grad, stream_.get());
  }

  void argmax_correct(ConstMatRef logits, const int32_t* labels, const uint8_t* split, int32_t* pred,
                      int32_t* correct_out) override {
    require(logits.cols <= INT_MAX, "argmax_correct", "more columns than int32 indices");
    kernels::launch_argmax_correct(logits.data, labels, split, logits.rows, logits.cols, pred, correct_out,
                                   stream_.get());
  }

  // ---- timing and accounting ------------------------------------------------
  int record_marker() override {
    if (n_markers_ == static_cast<int>(events_.size())) {
      cudaEvent_t e = nullptr;
      CUDA_CHECK(cudaEventCreate(&e));
      events_.push_back(e);
    }
    CUDA_CHECK(cudaEventRecord(events_[n_markers_], stream_.get()));
    return n_markers_++;
  }
  double elapsed_ms(int from, int to) override {
    require(from >= 0 && to >= 0 && std::max(from, to) < n_markers_, "elapsed_ms",
            [&] { return fmt::format("markers {} and {} of {}", from, to, n_markers_); });
    CUDA_CHECK(cudaEventSynchronize(events_[std::max(from, to)]));
    float ms = 0.0f;
    CUDA_CHECK(cudaEventElapsedTime(&ms, events_[from], events_[to]));
    return ms;
  }
  void clear_markers() override { n_markers_ = 0; }
  std::size_t peak_memory_bytes() const override { return peak_; }
  double peak_bandwidth_gbs() const override { return known_peak_bandwidth_gbs(name_); }

  // ---- optimizer ------------------------------------------------------------
  void adam_step(float* params, const float* grads, float* m, float* v, int64_t n, const AdamConfig& cfg,
                 int64_t step) override {
    require(step >= 1, "adam_step", [&] { return fmt::format("step = {} (counts from 1)", step); });
    // As the CPU reference and torch.optim.Adam: bias corrections in double.
    const double bc1 = 1.0 - std::pow(static_cast<double>(cfg.beta1), static_cast<double>(step));
    const double bc2 = 1.0 - std::pow(static_cast<double>(cfg.beta2), static_cast<double>(step));
    kernels::AdamStepParams hp{};
    hp.beta1 = cfg.beta1;
    hp.beta2 = cfg.beta2;
    hp.eps = cfg.eps;
    hp.weight_decay = cfg.weight_decay;
    hp.step_size = static_cast<float>(static_cast<double>(cfg.lr) / bc1);
    hp.bc2_sqrt = static_cast<float>(std::sqrt(bc2));
    kernels::launch_adam_step(params, grads, m, v, n, hp, stream_.get());
  }

 private:
  // A workspace that only grows. Growing waits for the stream, since queued
  // work may still use the old buffer; at steady state nothing is allocated
  // (which CUDA graph capture requires).
  void* grow(DeviceMemory& buffer, std::size_t bytes) {
    if (bytes > buffer.bytes()) {
      synchronize();
      account(-static_cast<int64_t>(buffer.bytes()));
      buffer = DeviceMemory();  // free first: the old and new buffers need not coexist
      buffer = DeviceMemory(bytes, device_);
      account(static_cast<int64_t>(bytes));
    }
    return buffer.get();
  }

  void account(int64_t delta) noexcept {
    in_use_ = static_cast<std::size_t>(static_cast<int64_t>(in_use_) + delta);
    peak_ = std::max(peak_, in_use_);
  }

  int device_;
  std::string name_;
  int n_sms_ = 0;
  std::size_t total_bytes_ = 0;
  // Declared first so they are destroyed last, after the memory that queued work used.
  StreamPtr stream_;
  DeviceMemory cublas_workspace_;  // outlives the cuBLAS handle that uses it
  CublasPtr cublas_;
  CusparsePtr cusparse_;
  DeviceMemory spmm_workspace_;  // cusparseSpMM external buffer
  DeviceMemory scratch_;         // per-row loss terms, column-sum partials
  std::unordered_map<void*, std::size_t> sizes_;  // live allocate() blocks
  std::size_t in_use_ = 0, peak_ = 0;             // bytes, workspaces included
  std::vector<cudaEvent_t> events_;               // marker pool, reused across clear_markers()
  int n_markers_ = 0;
  SpmmAlg spmm_alg_ = SpmmAlg::kAlg3;
  bool spmm_fallback_logged_ = false;
};

}  // namespace

bool cuda_compiled() { return true; }

int cuda_device_count(std::string* why) {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    if (why != nullptr) *why = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(err);
    return 0;
  }
  if (n <= 0) {
    if (why != nullptr) *why = "cudaGetDeviceCount: no CUDA device found";
    return 0;
  }
  return n;
}

std::unique_ptr<Backend> make_cuda_backend(int device_index) {
  std::string why;
  const int n = cuda_device_count(&why);
  if (n == 0) {
    throw DeviceError(fmt::format("--device cuda: no usable CUDA GPU ({}); use --device cpu or --device auto", why));
  }
  if (device_index < 0 || device_index >= n) {
    throw DeviceError(fmt::format("--device cuda:{}: no such GPU ({} CUDA device{} visible, cuda:0..cuda:{})",
                                  device_index, n, n == 1 ? "" : "s", n - 1));
  }
  return std::make_unique<CudaBackend>(device_index);
}

}  // namespace gcn

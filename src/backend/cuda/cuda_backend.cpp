// The CUDA backend's host side: the device, its stream, cuBLAS and cuSPARSE
// handles bound to that stream, device memory, and the launchers of the
// hand-written kernels (kernels/). Every op is enqueued on the backend's own
// non-blocking stream (nothing on the legacy default stream); no op allocates
// or waits once its workspaces have grown to the run's sizes, and per-epoch
// values come from the step state in device memory, so an epoch is recorded
// once as a CUDA graph (record()) and replayed.
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
#include "cuda_module.hpp"
#include "elementwise.hpp"
#include "gat.hpp"
#include "gcn/backend/backend.hpp"
#include "gcn/error.hpp"
#include "backend/op_checks.hpp"
#include "reduce.hpp"
#include "spmm.hpp"

#define CUBLAS_CHECK(call) \
  GCN_CHECK_STATUS("cuBLAS", call, cublasStatus_t, CUBLAS_STATUS_SUCCESS, cublasGetStatusString)
#define CUSPARSE_CHECK(call) \
  GCN_CHECK_STATUS("cuSPARSE", call, cusparseStatus_t, CUSPARSE_STATUS_SUCCESS, cusparseGetErrorString)

namespace gcn {
namespace {

using detail::require;

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
struct DestroyGraph {
  void operator()(CUgraph_st* g) const noexcept {
    if (cudaGraphDestroy(g) != cudaSuccess) spdlog::warn("cudaGraphDestroy failed");
  }
};
struct DestroyGraphExec {
  void operator()(CUgraphExec_st* g) const noexcept {
    if (cudaGraphExecDestroy(g) != cudaSuccess) spdlog::warn("cudaGraphExecDestroy failed");
  }
};

using StreamPtr = std::unique_ptr<CUstream_st, HandleDeleter<CUstream_st, DestroyStream>>;
using CublasPtr = std::unique_ptr<cublasContext, HandleDeleter<cublasContext, DestroyCublas>>;
using CusparsePtr = std::unique_ptr<cusparseContext, HandleDeleter<cusparseContext, DestroyCusparse>>;
using SpMatPtr = std::unique_ptr<cusparseSpMatDescr, HandleDeleter<cusparseSpMatDescr, DestroySpMat>>;
using ConstDnMatPtr =
    std::unique_ptr<const cusparseDnMatDescr, HandleDeleter<const cusparseDnMatDescr, DestroyDnMat>>;
using DnMatPtr = std::unique_ptr<cusparseDnMatDescr, HandleDeleter<cusparseDnMatDescr, DestroyDnMat>>;
using GraphPtr = std::unique_ptr<CUgraph_st, HandleDeleter<CUgraph_st, DestroyGraph>>;
using GraphExecPtr = std::unique_ptr<CUgraphExec_st, HandleDeleter<CUgraphExec_st, DestroyGraphExec>>;

constexpr double kMiB = 1024.0 * 1024.0;

void* device_malloc(std::size_t bytes, int device) {
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, std::max<std::size_t>(bytes, 1));
  if (err != cudaSuccess) {
    (void)cudaGetLastError();  // an allocation failure is not sticky: clear it for the next check
    std::size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) (void)cudaGetLastError();
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

// Counts every byte of device memory the backend holds (allocate(), the
// sparse matrices, the workspaces), for peak_memory_bytes().
class MemoryAccount {
 public:
  void add(int64_t delta) noexcept {
    in_use_ = static_cast<std::size_t>(static_cast<int64_t>(in_use_) + delta);
    peak_ = std::max(peak_, in_use_);
  }
  std::size_t peak() const { return peak_; }

 private:
  std::size_t in_use_ = 0, peak_ = 0;
};

// Owning device memory, counted in an account.
class DeviceMemory {
 public:
  DeviceMemory() = default;
  DeviceMemory(std::size_t bytes, int device, MemoryAccount* account)
      : ptr_(device_malloc(bytes, device)), bytes_(bytes), account_(account) {
    if (account_ != nullptr) account_->add(static_cast<int64_t>(bytes_));
  }
  ~DeviceMemory() { release(); }
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  DeviceMemory(DeviceMemory&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)), account_(o.account_) {}
  DeviceMemory& operator=(DeviceMemory&& o) noexcept {
    if (this != &o) {
      release();
      ptr_ = std::exchange(o.ptr_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
      account_ = o.account_;
    }
    return *this;
  }
  void* get() const { return ptr_; }
  std::size_t bytes() const { return bytes_; }

 private:
  void release() noexcept {
    if (ptr_ != nullptr && account_ != nullptr) account_->add(-static_cast<int64_t>(bytes_));
    device_free(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
  MemoryAccount* account_ = nullptr;
};

// cuSPARSE's setup for one product A·B -> C with row-major B and C: the dense
// descriptors, the workspace cusparseSpMM_bufferSize asked for (each plan its
// own, since cusparseSpMM_preprocess keeps data in it), or that the algorithm
// refused the shape. Made on the product's first call and reused by every
// later one: an epoch multiplies the same buffers each time, so no descriptor
// is created per epoch.
struct SpmmPlan {
  ConstDnMatPtr b;
  DnMatPtr c;
  DeviceMemory workspace;
  bool supported = true;
};

// A CSR matrix on the device with its cuSPARSE descriptor, its balanced
// schedule for our own kernel, and the plans of the products it takes part
// in. The descriptor holds raw pointers into the three arrays, which live
// exactly as long.
class CudaSparse final : public SparseMatrix {
 public:
  CudaSparse(const CsrMatrix& host, int device, MemoryAccount* account, cudaStream_t stream)
      : SparseMatrix(host.n_rows, host.n_cols, host.nnz()),
        indptr_(host.indptr.size() * sizeof(int32_t), device, account),
        indices_(host.indices.size() * sizeof(int32_t), device, account),
        values_(host.values.size() * sizeof(float), device, account) {
    const kernels::SpmmSchedule schedule = kernels::make_spmm_schedule(host.indptr);
    n_segments_ = static_cast<int64_t>(schedule.segments.size());
    n_parts_ = schedule.n_parts;
    n_counters_ = schedule.n_counters;
    segments_ = DeviceMemory(schedule.segments.size() * sizeof(kernels::SpmmSegment), device, account);
    counters_ = DeviceMemory(static_cast<std::size_t>(schedule.n_counters) * sizeof(unsigned), device, account);
    copy(indptr_, host.indptr.data(), host.indptr.size() * sizeof(int32_t), stream);
    copy(indices_, host.indices.data(), host.indices.size() * sizeof(int32_t), stream);
    copy(values_, host.values.data(), host.values.size() * sizeof(float), stream);
    copy(segments_, schedule.segments.data(), schedule.segments.size() * sizeof(kernels::SpmmSegment), stream);
    if (schedule.n_counters > 0) {
      CUDA_CHECK(cudaMemsetAsync(counters_.get(), 0, counters_.bytes(), stream));
    }
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
  const kernels::SpmmSegment* segments() const { return static_cast<const kernels::SpmmSegment*>(segments_.get()); }
  int64_t n_segments() const { return n_segments_; }
  int64_t n_parts() const { return n_parts_; }
  int64_t n_counters() const { return n_counters_; }
  unsigned* counters() const { return static_cast<unsigned*>(counters_.get()); }

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

  DeviceMemory indptr_;    // (rows + 1) int32
  DeviceMemory indices_;   // (nnz) int32
  DeviceMemory values_;    // (nnz) float
  DeviceMemory segments_;  // the schedule of our SpMM kernel
  DeviceMemory counters_;  // its completion counters (zero between products)
  int64_t n_segments_ = 0, n_parts_ = 0, n_counters_ = 0;
  SpMatPtr descr_;
  mutable std::map<PlanKey, SpmmPlan> plans_;
};

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

// A recorded epoch: the instantiated CUDA graph, replayed on the stream.
class CudaRecording final : public Recording {
 public:
  CudaRecording(GraphExecPtr exec, cudaStream_t stream) : exec_(std::move(exec)), stream_(stream) {}
  void replay() override { CUDA_CHECK(cudaGraphLaunch(exec_.get(), stream_)); }

 private:
  GraphExecPtr exec_;
  cudaStream_t stream_;
};

class CudaBenchOps;

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device);
  ~CudaBackend() override;

  DeviceKind kind() const override { return DeviceKind::kCuda; }
  std::string describe() const override {
    return fmt::format("cuda:{} {} ({} SMs, {:.1f} GiB, SpMM {})", device_, name_, n_sms_,
                       static_cast<double>(total_bytes_) / (1024.0 * 1024.0 * 1024.0), spmm_alg_name(spmm_alg_));
  }

  // ---- memory ---------------------------------------------------------------
  void* allocate(std::size_t bytes) override {
    refuse_while_recording("allocate");
    void* p = device_malloc(bytes, device_);
    sizes_[p] = bytes;
    account_.add(static_cast<int64_t>(bytes));
    return p;
  }
  void deallocate(void* ptr) noexcept override {
    const auto it = sizes_.find(ptr);
    if (it != sizes_.end()) {
      account_.add(-static_cast<int64_t>(it->second));
      sizes_.erase(it);
    }
    device_free(ptr);
  }
  void upload(void* dst, const void* host_src, std::size_t bytes) override {
    refuse_while_recording("upload");
    if (bytes == 0) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream()));
    CUDA_CHECK(cudaStreamSynchronize(stream()));  // host_src may be freed once we return
  }
  void download(void* host_dst, const void* src, std::size_t bytes) override {
    refuse_while_recording("download");
    if (bytes > 0) CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream()));
    synchronize();
  }
  void fill_zero(void* dst, std::size_t bytes) override {
    if (bytes > 0) CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, stream()));
  }
  void copy(void* dst, const void* src, std::size_t bytes) override {
    if (bytes > 0) CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()));
  }
  void synchronize() override {
    refuse_while_recording("synchronize");
    CUDA_CHECK(cudaStreamSynchronize(stream()));
  }
  void* allocate_host(std::size_t bytes) override {
    refuse_while_recording("allocate_host");
    void* p = nullptr;
    const cudaError_t err = cudaMallocHost(&p, std::max<std::size_t>(bytes, 1));
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      throw DeviceError(fmt::format("cuda:{}: cannot allocate {} bytes of pinned host memory: {}", device_, bytes,
                                    cudaGetErrorString(err)));
    }
    return p;
  }
  void deallocate_host(void* ptr) noexcept override {
    if (ptr != nullptr && cudaFreeHost(ptr) != cudaSuccess) spdlog::warn("cudaFreeHost failed");
  }
  void download_async(void* host_dst, const void* src, std::size_t bytes) override {
    if (bytes > 0) CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream()));
  }

  std::unique_ptr<SparseMatrix> upload_csr(const CsrMatrix& host) override {
    refuse_while_recording("upload_csr");
    host.validate("upload_csr");
    return std::make_unique<CudaSparse>(host, device_, &account_, stream());
  }

  // ---- recording ------------------------------------------------------------
  std::unique_ptr<Recording> record(const std::function<void()>& body) override;

  // ---- timing and accounting ------------------------------------------------
  int record_marker() override {
    refuse_while_recording("record_marker");
    if (n_markers_ == static_cast<int>(events_.size())) {
      cudaEvent_t e = nullptr;
      CUDA_CHECK(cudaEventCreate(&e));
      events_.push_back(e);
    }
    CUDA_CHECK(cudaEventRecord(events_[n_markers_], stream()));
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
  std::size_t peak_memory_bytes() const override { return account_.peak(); }
  std::size_t available_memory_bytes() const override {
    std::size_t free_bytes = 0, total_bytes = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    return free_bytes;
  }
  BenchOps* bench_ops() override;

  cudaStream_t stream() const { return stream_.get(); }
  double* scratch_doubles(int64_t n) {
    return static_cast<double*>(grow(scratch_, static_cast<std::size_t>(std::max<int64_t>(n, 0)) * sizeof(double)));
  }

 protected:
  void do_spmm(const SparseMatrix& a_base, ConstMatRef b, MatRef c, const float* bias, bool prepared) override;
  void do_prepare_outputs(const OutputInit* outputs, int count) override {
    // Only cuSPARSE's products read their output (beta = 1 with a bias);
    // our kernel writes every element.
    if (spmm_alg_ != SpmmAlg::kKernel) fill_outputs(outputs, count);
  }
  void do_gemm(ConstMatRef a, bool trans_a, ConstMatRef b, bool trans_b, MatRef c, int batch) override;
  void do_column_sum(ConstMatRef x, float* out) override {
    const int64_t n_partial = kernels::column_sum_scratch(x.rows, x.cols);
    kernels::launch_column_sum(x.data, x.rows, x.cols, out, scratch_doubles(n_partial), stream());
  }
  static_assert(static_cast<int>(Activation::kRelu) == kernels::kActRelu &&
                    static_cast<int>(Activation::kElu) == kernels::kActElu,
                "the kernels' activation codes are gcn::Activation's");
  void do_relu_dropout_forward(Activation act, ConstMatRef x, MatRef y, float p, const StepState* steps, int batch,
                               bool rates_from_steps, uint32_t site) override {
    kernels::launch_act_dropout_forward(static_cast<int>(act), x.data, y.data, x.rows, x.cols, batch, p, steps,
                                        rates_from_steps, site, stream());
  }
  void do_relu_dropout_backward(Activation act, ConstMatRef dy, ConstMatRef y, MatRef dx, float p,
                                const StepState* steps, int batch, bool rates_from_steps, uint32_t site,
                                float* col_sums) override {
    double* partial = col_sums != nullptr ? scratch_doubles(kernels::relu_dropout_backward_scratch(dx.rows, dx.cols))
                                          : nullptr;
    kernels::launch_act_dropout_backward(static_cast<int>(act), dy.data, y.data, dx.data, dx.rows, dx.cols, batch, p,
                                         steps, rates_from_steps, site, col_sums, partial, counters(1), stream());
  }
  void do_sparse_dropout(const SparseMatrix& a_base, bool transposed, float p, const StepState* steps, int batch,
                         uint32_t site, float* values) override {
    const CudaSparse& a = cuda_sparse(a_base, "sparse_dropout");
    kernels::launch_sparse_dropout(a.indptr(), a.indices(), a.values(), a.rows(), a.cols(), a.nnz(), transposed, p,
                                   steps, batch, site, values, stream());
  }
  // Our own kernel (cuSPARSE takes one matrix's values per descriptor):
  // every model of the batch in one launch, each element written.
  void do_spmm_values(const SparseMatrix& a_base, const float* values, ConstMatRef b, MatRef c, int batch,
                      bool /*prepared*/) override {
    const CudaSparse& a = cuda_sparse(a_base, "spmm_values");
    if (c.size() == 0) return;
    const int64_t n = c.cols / batch;
    auto* partials = static_cast<float*>(
        grow(spmm_partials_, static_cast<std::size_t>(a.n_parts() * std::max<int64_t>(n, 1) * batch) * sizeof(float)));
    kernels::launch_csr_spmm_batch(a.segments(), a.n_segments(), a.indices(), values, a.nnz(), n, batch, b.data, c.data,
                                   partials, a.n_parts(), counters(a.n_counters() * batch), a.n_counters(), stream());
  }
  void do_gat_attention(const EdgeLists& g, ConstMatRef xw, const float* att_src, const float* att_dst, int heads,
                        MatRef s_src, MatRef s_dst, MatRef alpha, int batch) override {
    kernels::launch_gat_attention(gat_shape(g, xw, heads, batch), g.in_ptr, g.in_src, xw.data, att_src, att_dst,
                                  s_src.data, s_dst.data, alpha.data, stream());
  }
  void do_gat_aggregate(const EdgeLists& g, ConstMatRef alpha, ConstMatRef xw, int heads, const float* bias,
                        MatRef out, float p, const StepState* steps, uint32_t site, int batch) override {
    kernels::launch_gat_aggregate(gat_shape(g, xw, heads, batch), g.in_ptr, g.in_src, alpha.data, xw.data, bias,
                                  out.data, p, steps, site, stream());
  }
  void do_gat_backward(const EdgeLists& g, ConstMatRef dout, ConstMatRef xw, const float* att_src,
                       const float* att_dst, ConstMatRef s_src, ConstMatRef s_dst, ConstMatRef alpha, int heads, float p,
                       const StepState* steps, uint32_t site, MatRef dxw, float* d_att_src, float* d_att_dst,
                       MatRef d_alpha, MatRef ds_src, MatRef ds_dst, int batch) override {
    const kernels::GatShape shape = gat_shape(g, xw, heads, batch);
    double* partial = scratch_doubles(kernels::gat_backward_scratch(shape));
    kernels::launch_gat_backward(shape, g.in_ptr, g.in_src, g.edge_dst, g.out_ptr, g.out_edge, dout.data, xw.data,
                                 att_src, att_dst, s_src.data, s_dst.data, alpha.data, p, steps, site, dxw.data,
                                 d_att_src, d_att_dst, d_alpha.data, ds_src.data, ds_dst.data, partial, counters(1),
                                 stream());
  }
  void do_log_softmax(ConstMatRef x, MatRef y) override {
    kernels::launch_log_softmax(x.data, y.data, x.rows, x.cols, stream());
  }
  void do_classifier_loss(ConstMatRef logits, const int32_t* labels, const uint8_t* split, uint8_t mask_bit,
                          int64_t n_masked, MatRef grad, float* bias_grad, const StepState* steps, MetricsRing ring,
                          int batch) override {
    const int64_t classes = logits.cols / batch;
    kernels::launch_classifier_loss(logits.data, labels, split, mask_bit, n_masked, logits.rows, classes, batch,
                                    grad.data, bias_grad, steps, ring.slots, ring.size,
                                    scratch_doubles(kernels::classifier_scratch(logits.rows, classes, batch)),
                                    counters(batch), stream());
  }
  void do_evaluate(ConstMatRef logits, const int32_t* labels, const uint8_t* split, int64_t n_val, StepState* steps,
                   MetricsRing ring, bool advance, int batch) override {
    const int64_t classes = logits.cols / batch;
    kernels::launch_evaluate(logits.data, labels, split, n_val, logits.rows, classes, batch, steps, ring.slots,
                             ring.size, advance,
                             scratch_doubles(kernels::classifier_scratch(logits.rows, classes, batch)),
                             counters(batch), stream());
  }
  void do_adam_step(float* params, const float* grads, float* m, float* v, const ParamBlocks& blocks,
                    const AdamConfig& cfg, const StepState* steps, int batch, bool rates_from_steps) override {
    const kernels::AdamHyper hp{cfg.lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay};
    kernels::launch_adam_step(params, grads, m, v, regions(blocks), hp, steps, batch, rates_from_steps, stream());
  }
  void do_copy_if_improved(void* dst, const void* src, std::size_t bytes, const StepState* step) override {
    kernels::launch_copy_if_improved(dst, src, bytes, step, stream());
  }
  void do_batch_copy_if_improved(float* dst, const float* src, const ParamBlocks& blocks, const StepState* steps,
                                 int batch) override {
    kernels::launch_batch_copy_if_improved(dst, src, regions(blocks), steps, batch, stream());
  }

 private:
  static const CudaSparse& cuda_sparse(const SparseMatrix& a, const char* op) {
    const auto* m = dynamic_cast<const CudaSparse*>(&a);
    require(m != nullptr, op, "sparse matrix belongs to another backend");
    return *m;
  }
  static kernels::GatShape gat_shape(const EdgeLists& g, ConstMatRef xw, int heads, int batch) {
    require(batch <= kernels::kMaxBatch, "gat", [&] { return fmt::format("a batch of {} models", batch); });
    return {g.n_nodes, g.n_edges, heads, batch, xw.cols / (int64_t{batch} * heads)};
  }
  SpmmPlan make_spmm_plan(const CudaSparse& a, ConstMatRef b, MatRef c, cusparseSpMMAlg_t alg);
  void spmm_kernel(const CudaSparse& a, ConstMatRef b, MatRef c, const float* bias) {
    auto* partials = static_cast<float*>(
        grow(spmm_partials_, static_cast<std::size_t>(a.n_parts() * std::max<int64_t>(c.cols, 1)) * sizeof(float)));
    kernels::launch_csr_spmm(a.segments(), a.n_segments(), a.indices(), a.values(), c.cols, b.data, c.data, bias,
                             partials, a.counters(), stream());
  }
  // Zeros or bias rows into up to kMaxOutputInits outputs, one launch.
  void fill_outputs(const OutputInit* outputs, int count) {
    kernels::OutputFills fills{};
    for (int i = 0; i < count; ++i) {
      fills.item[fills.count++] = {outputs[i].c.data, outputs[i].bias, outputs[i].c.rows, outputs[i].c.cols};
    }
    kernels::launch_fill_outputs(fills, stream());
  }
  void fill_output(MatRef c, const float* bias) {
    const OutputInit one{c, bias};
    fill_outputs(&one, 1);
  }
  // n ticket counters of the last-block reductions (one per model of a
  // batch), zero between launches: new ones are zeroed as they are added.
  unsigned* counters(int64_t n) {
    const std::size_t bytes = static_cast<std::size_t>(std::max<int64_t>(n, 1)) * sizeof(unsigned);
    if (bytes > counters_.bytes()) {
      grow(counters_, bytes);
      fill_zero(counters_.get(), bytes);
    }
    return static_cast<unsigned*>(counters_.get());
  }
  static kernels::ParamRegions regions(const ParamBlocks& blocks) {
    static_assert(kernels::ParamRegions::kMax == ParamBlocks::kMax, "one region per parameter block");
    kernels::ParamRegions r{};
    r.count = blocks.count;
    for (int b = 0; b < blocks.count; ++b) {
      r.item[b] = {blocks.block[b].offset, blocks.block[b].rows, blocks.block[b].cols};
    }
    return r;
  }

  // A workspace that only grows. Growing waits for the stream, since queued
  // work may still use the old buffer; at steady state nothing is allocated,
  // and growing while an epoch is recorded is an error (a graph cannot
  // allocate).
  void* grow(DeviceMemory& buffer, std::size_t bytes) {
    if (bytes > buffer.bytes()) {
      refuse_while_recording("a workspace growing");
      synchronize();
      buffer = DeviceMemory();  // free first: the old and new buffers need not coexist
      buffer = DeviceMemory(bytes, device_, &account_);
    }
    return buffer.get();
  }
  void refuse_while_recording(const char* what) const {
    if (recording_) {
      throw Error(fmt::format("cuda:{}: {} while an epoch is recorded as a CUDA graph (a recorded epoch must not "
                              "allocate, copy from the host or wait); rerun with --cuda-graph off and report this",
                              device_, what));
    }
  }

  int device_;
  std::string name_;
  int n_sms_ = 0;
  std::size_t total_bytes_ = 0;
  MemoryAccount account_;
  // Declared first so they are destroyed last, after the memory that queued work used.
  StreamPtr stream_;
  DeviceMemory cublas_workspace_;  // outlives the cuBLAS handle that uses it
  CublasPtr cublas_;
  CusparsePtr cusparse_;
  DeviceMemory scratch_;         // partial sums of the reductions
  DeviceMemory spmm_partials_;   // partial sums of our SpMM kernel's cut rows
  DeviceMemory counters_;        // the last-block tickets, one per model (zero between launches)
  std::unordered_map<void*, std::size_t> sizes_;  // live allocate() blocks
  std::vector<cudaEvent_t> events_;               // marker pool, reused across clear_markers()
  int n_markers_ = 0;
  SpmmAlg spmm_alg_ = SpmmAlg::kAlg3;
  bool spmm_fallback_logged_ = false;
  bool recording_ = false;
  std::unique_ptr<CudaBenchOps> bench_;
};

// The unfused NLL gcn-bench compares the fused loss with.
class CudaBenchOps final : public BenchOps {
 public:
  explicit CudaBenchOps(CudaBackend& be) : be_(be) {}
  void nll_loss(ConstMatRef log_probs, const int32_t* labels, const uint8_t* split, uint8_t mask_bit,
                int64_t n_masked, float* loss_out, float* grad) override {
    require(n_masked >= 0 && n_masked <= log_probs.rows, "nll_loss",
            [&] { return fmt::format("n_masked = {} for {} rows", n_masked, log_probs.rows); });
    auto* row_loss = reinterpret_cast<float*>(be_.scratch_doubles((log_probs.rows + 1) / 2));
    kernels::launch_nll_loss(log_probs.data, labels, split, mask_bit, n_masked, log_probs.rows, log_probs.cols,
                             row_loss, loss_out, grad, be_.stream());
  }

 private:
  CudaBackend& be_;
};

CudaBackend::CudaBackend(int device) : device_(device) {
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
  CUBLAS_CHECK(cublasSetStream(cublas_.get(), stream()));
  // Plain FP32 (no TF32): the results must match the CPU's float math.
  CUBLAS_CHECK(cublasSetMathMode(cublas_.get(), CUBLAS_DEFAULT_MATH));
  cublas_workspace_ = DeviceMemory(kCublasWorkspaceBytes, device_, &account_);
  CUBLAS_CHECK(cublasSetWorkspace(cublas_.get(), cublas_workspace_.get(), cublas_workspace_.bytes()));

  spmm_alg_ = spmm_alg_from_env();

  cusparseHandle_t sp = nullptr;
  CUSPARSE_CHECK(cusparseCreate(&sp));
  cusparse_.reset(sp);
  CUSPARSE_CHECK(cusparseSetStream(cusparse_.get(), stream()));

  counters_ = DeviceMemory(sizeof(unsigned), device_, &account_);  // counters() adds more for a batch
  fill_zero(counters_.get(), counters_.bytes());
  bench_ = std::make_unique<CudaBenchOps>(*this);
}

CudaBackend::~CudaBackend() {
  for (cudaEvent_t e : events_) {
    if (cudaEventDestroy(e) != cudaSuccess) spdlog::warn("cudaEventDestroy failed");
  }
  // Queued work may still use the workspaces freed below.
  if (stream_ && cudaStreamSynchronize(stream_.get()) != cudaSuccess) {
    spdlog::warn("cuda:{}: stream synchronisation failed at shutdown", device_);
  }
}

BenchOps* CudaBackend::bench_ops() { return bench_.get(); }

void CudaBackend::do_spmm(const SparseMatrix& a_base, ConstMatRef b, MatRef c, const float* bias, bool prepared) {
  const auto* a = dynamic_cast<const CudaSparse*>(&a_base);
  require(a != nullptr, "spmm", "sparse matrix belongs to another backend");
  if (c.size() == 0) return;
  // Our kernel: the chosen one, and the one for a single column (cuSPARSE
  // may route n = 1 through SpMV, whose determinism NVIDIA does not document).
  if (spmm_alg_ == SpmmAlg::kKernel || c.cols == 1) {
    spmm_kernel(*a, b, c, bias);  // writes every element of c
    return;
  }
  if (a->descr() == nullptr) {  // no non-zeros: C = bias or 0
    fill_output(c, bias);
    return;
  }

  // CSR_ALG3 by default: of cuSPARSE's CSR algorithms it is the one NVIDIA
  // names as bit-wise reproducible run to run (CSR_ALG1 and CSR_ALG2 "may
  // produce slightly different results"), and we promise bit-identical
  // reruns. A shape or layout it refuses goes to our own kernel, also
  // deterministic, never to ALG1/ALG2 behind the user's back.
  const cusparseSpMMAlg_t alg = spmm_alg_ == SpmmAlg::kAlg1   ? CUSPARSE_SPMM_CSR_ALG1
                                : spmm_alg_ == SpmmAlg::kAlg2 ? CUSPARSE_SPMM_CSR_ALG2
                                                              : CUSPARSE_SPMM_CSR_ALG3;
  SpmmPlan* plan = a->find_plan(b.data, c.data, c.cols, alg);
  if (plan == nullptr) plan = &a->keep_plan(b.data, c.data, c.cols, alg, make_spmm_plan(*a, b, c, alg));
  if (!plan->supported) {
    if (!spmm_fallback_logged_) {
      spdlog::warn("cuSPARSE SpMM {} does not take a ({}, {}) x ({}, {}) row-major product; using gcn-train's "
                   "own SpMM kernel for such products",
                   spmm_alg_name(spmm_alg_), a->rows(), a->cols(), b.rows, b.cols);
      spmm_fallback_logged_ = true;
    }
    spmm_kernel(*a, b, c, bias);
    return;
  }
  // C = A·B + beta·C. cuSPARSE documents beta == 0 as overwriting C but not
  // that C is then never read, so C always starts as zeros or the bias: a
  // prepared output already holds it (one launch for several products), any
  // other gets it here. A stale NaN in C cannot leak through 0 * NaN.
  if (!prepared) fill_output(c, bias);
  const float alpha = 1.0f, beta = bias != nullptr ? 1.0f : 0.0f;
  CUSPARSE_CHECK(cusparseSpMM(cusparse_.get(), CUSPARSE_OPERATION_NON_TRANSPOSE, CUSPARSE_OPERATION_NON_TRANSPOSE,
                              &alpha, a->descr(), plan->b.get(), &beta, plan->c.get(), CUDA_R_32F, alg,
                              plan->workspace.get()));
}

SpmmPlan CudaBackend::make_spmm_plan(const CudaSparse& a, ConstMatRef b, MatRef c, cusparseSpMMAlg_t alg) {
  refuse_while_recording("a new cuSPARSE plan");
  SpmmPlan plan;
  cusparseConstDnMatDescr_t b_raw = nullptr;
  CUSPARSE_CHECK(cusparseCreateConstDnMat(&b_raw, b.rows, b.cols, b.cols, b.data, CUDA_R_32F, CUSPARSE_ORDER_ROW));
  plan.b.reset(b_raw);
  cusparseDnMatDescr_t c_raw = nullptr;
  CUSPARSE_CHECK(cusparseCreateDnMat(&c_raw, c.rows, c.cols, c.cols, c.data, CUDA_R_32F, CUSPARSE_ORDER_ROW));
  plan.c.reset(c_raw);
  const float alpha = 1.0f, beta = 1.0f;
  std::size_t workspace = 0;
  const cusparseStatus_t st =
      cusparseSpMM_bufferSize(cusparse_.get(), CUSPARSE_OPERATION_NON_TRANSPOSE, CUSPARSE_OPERATION_NON_TRANSPOSE,
                              &alpha, a.descr(), plan.b.get(), &beta, plan.c.get(), CUDA_R_32F, alg, &workspace);
  // NOT_SUPPORTED is the documented refusal; INVALID_VALUE is what some
  // algorithms answer for a dense layout they do not take (CSR_ALG1 and
  // column-major-only B, NVIDIA/CUDALibrarySamples#97): both mean "use our
  // kernel", never an error.
  if (st == CUSPARSE_STATUS_NOT_SUPPORTED || st == CUSPARSE_STATUS_INVALID_VALUE) {
    plan.supported = false;
    return plan;
  }
  CUSPARSE_CHECK(st);
  plan.workspace = DeviceMemory(std::max<std::size_t>(workspace, 1), device_, &account_);
  // Preprocessing analyses A once for the products that follow; NVIDIA
  // documents it as useful for CSR_ALG1 and CSR_ALG3 when A is reused. It
  // keeps its analysis in this plan's workspace, which is why each plan has
  // its own.
  if (alg == CUSPARSE_SPMM_CSR_ALG1 || alg == CUSPARSE_SPMM_CSR_ALG3) {
    CUSPARSE_CHECK(cusparseSpMM_preprocess(cusparse_.get(), CUSPARSE_OPERATION_NON_TRANSPOSE,
                                           CUSPARSE_OPERATION_NON_TRANSPOSE, &alpha, a.descr(), plan.b.get(), &beta,
                                           plan.c.get(), CUDA_R_32F, alg, plan.workspace.get()));
  }
  return plan;
}

void CudaBackend::do_gemm(ConstMatRef a, bool trans_a, ConstMatRef b, bool trans_b, MatRef c, int batch) {
  // One model's blocks: a batch's operands are `batch` column blocks each.
  const ConstMatRef a1(a.data, a.rows, a.cols / batch), b1(b.data, b.rows, b.cols / batch);
  const MatRef c1{c.data, c.rows, c.cols / batch};
  const detail::GemmDims dims = detail::gemm_dims(a1, trans_a, b1, trans_b, c1);
  const int64_t m = dims.m, n = dims.n, k = dims.k;
  require(m <= INT_MAX && n <= INT_MAX && k <= INT_MAX && a.cols <= INT_MAX && b.cols <= INT_MAX && c.cols <= INT_MAX,
          "gemm", "dimensions beyond 32-bit cuBLAS sizes");
  if (m == 0 || n == 0) return;
  if (k == 0) {
    fill_zero(c.data, static_cast<std::size_t>(c.size()) * sizeof(float));
    return;
  }
  // cuBLAS is column-major and a row-major matrix is its column-major
  // transpose, so compute Cᵀ (n, m) = op(B)ᵀ · op(A)ᵀ: B comes first, each
  // operand keeps its own transpose flag, and every leading dimension is
  // the stored row length (cols). beta = 0: cuBLAS documents that C is then
  // not read.
  const float alpha = 1.0f, beta = 0.0f;
  const cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (batch == 1) {
    CUBLAS_CHECK(cublasSgemm(cublas_.get(), op_b, op_a, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k),
                             &alpha, b.data, static_cast<int>(b.cols), a.data, static_cast<int>(a.cols), &beta, c.data,
                             static_cast<int>(n)));
    return;
  }
  // A batch: block k of a row-major (rows, batch · w) matrix is the
  // column-major (w, rows) matrix at k · w with leading dimension batch · w
  // (the full row), so one strided-batched call covers every model.
  CUBLAS_CHECK(cublasSgemmStridedBatched(cublas_.get(), op_b, op_a, static_cast<int>(n), static_cast<int>(m),
                                         static_cast<int>(k), &alpha, b.data, static_cast<int>(b.cols), b1.cols,
                                         a.data, static_cast<int>(a.cols), a1.cols, &beta, c.data,
                                         static_cast<int>(c.cols), c1.cols, batch));
}

std::unique_ptr<Recording> CudaBackend::record(const std::function<void()>& body) {
  CUDA_CHECK(cudaStreamBeginCapture(stream(), cudaStreamCaptureModeGlobal));
  recording_ = true;
  cudaGraph_t graph = nullptr;
  try {
    body();
  } catch (...) {
    recording_ = false;
    // End (and drop) the capture so the stream can be used again.
    if (cudaStreamEndCapture(stream(), &graph) == cudaSuccess && graph != nullptr) (void)cudaGraphDestroy(graph);
    (void)cudaGetLastError();
    throw;
  }
  recording_ = false;
  CUDA_CHECK(cudaStreamEndCapture(stream(), &graph));
  const GraphPtr owned(graph);
  cudaGraphExec_t exec = nullptr;
  CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  return std::make_unique<CudaRecording>(GraphExecPtr(exec), stream());
}

}  // namespace

// ---- the module's entry points (declared in src/backend/cuda/cuda_module.hpp): the
// loader (src/backend/cuda/cuda_loader.cpp) reaches them through gcn_cuda_module_v1 ------
namespace cuda_module {

int device_count(std::string* why) {
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

std::unique_ptr<Backend> make_backend(int device_index) {
  std::string why;
  const int n = device_count(&why);
  if (n == 0) {
    throw DeviceError(fmt::format("--device cuda: no usable CUDA GPU ({}); use --device cpu or --device auto", why));
  }
  if (device_index < 0 || device_index >= n) {
    throw DeviceError(fmt::format("--device cuda:{}: no such GPU ({} CUDA device{} visible, cuda:0..cuda:{})",
                                  device_index, n, n == 1 ? "" : "s", n - 1));
  }
  return std::make_unique<CudaBackend>(device_index);
}

}  // namespace cuda_module
}  // namespace gcn

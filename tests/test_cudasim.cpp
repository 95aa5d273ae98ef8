// cudasim (tests/cudasim), the CPU simulation that runs the CUDA backend and
// kernels in a -DGCN_CUDA=SIM build, checked against what the CUDA
// programming guide and the cuBLAS/cuSPARSE documentation define: warp
// shuffles, __syncthreads, launch limits, lazy streams, the library calls on
// hand-computed matrices; its fault reports on misuse; and the CUDA backend's
// paths that only the simulator can reach on purpose (out of memory, no
// device, cuSPARSE refusing a product).
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusparse.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "gcn/backend.hpp"
#include "gcn/buffer.hpp"
#include "gcn/devices.hpp"
#include "gcn/error.hpp"
#include "gcn/synthetic.hpp"
#include "gcn/trainer.hpp"
#include "test_compare.hpp"
#include "test_random.hpp"
#include "test_util.hpp"

namespace {

using gcn::test::ScopedEnv;

// ---- kernels, each exercising one primitive ---------------------------------

// out[i] = the sum of v over lane i's group of `width` lanes, by a butterfly.
template <int Width>
__global__ void group_sum_kernel(const int* v, int* out) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  int x = v[i];
  for (int offset = Width / 2; offset > 0; offset >>= 1) x += __shfl_xor_sync(0xffffffffu, x, offset, Width);
  out[i] = x;
}

// out[i] = the value __shfl_xor_sync returns for lane_mask with width 8.
__global__ void xor_kernel(const float* v, float* out, int lane_mask) {
  const int i = static_cast<int>(threadIdx.x);
  out[i] = __shfl_xor_sync(0xffffffffu, v[i], lane_mask, 8);
}

// Reverses a block's worth of values through shared memory.
__global__ void reverse_kernel(const int* in, int* out) {
  __shared__ int tile[256];
  const int t = static_cast<int>(threadIdx.x), n = static_cast<int>(blockDim.x);
  const int base = static_cast<int>(blockIdx.x) * n;
  tile[t] = in[base + t];
  __syncthreads();  // every write lands before any read of another thread's slot
  out[base + t] = tile[n - 1 - t];
}

// Lanes past `active` leave before a full-mask shuffle: undefined in CUDA.
__global__ void early_exit_shuffle_kernel(float* out, int active) {
  const int i = static_cast<int>(threadIdx.x);
  if (i >= active) return;
  out[i] = __shfl_xor_sync(0xffffffffu, 1.0f, 1, 32);
}

// Half the block waits at __syncthreads, the other half at a shuffle.
__global__ void divergent_barrier_kernel(float* out) {
  const int i = static_cast<int>(threadIdx.x);
  if (i < 32) {
    __syncthreads();
    out[i] = 0.0f;
  } else {
    out[i] = __shfl_xor_sync(0xffffffffu, 1.0f, 1, 32);
  }
}

// Every thread writes its index to one place: the last writer wins, a race.
__global__ void last_writer_kernel(int* out) { *out = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x); }

__global__ void fill_kernel(float* out, float value, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) out[i] = value;
}

// ---- helpers ----------------------------------------------------------------

class Cudasim : public ::testing::Test {
 protected:
  void SetUp() override { cudasim::reset_for_tests(); }
  void TearDown() override { cudasim::reset_for_tests(); }
};

template <class T>
T* device_alloc(std::size_t n) {
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, n * sizeof(T)), cudaSuccess);
  return static_cast<T*>(p);
}

template <class T>
T* device_copy(const std::vector<T>& host) {
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, host.size() * sizeof(T)), cudaSuccess);
  EXPECT_EQ(cudaMemcpyAsync(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice, nullptr), cudaSuccess);
  return static_cast<T*>(p);
}

template <class T>
std::vector<T> host_copy(const T* dev, std::size_t n) {
  std::vector<T> host(n);
  EXPECT_EQ(cudaMemcpyAsync(host.data(), dev, n * sizeof(T), cudaMemcpyDeviceToHost, nullptr), cudaSuccess);
  EXPECT_EQ(cudaStreamSynchronize(nullptr), cudaSuccess);
  return host;
}

// ---- the device side ----------------------------------------------------------

TEST_F(Cudasim, ShuffleButterflySumsEachGroupOfLanes) {
  std::vector<int> v(64);
  std::iota(v.begin(), v.end(), 1);  // 1..64
  int* dv = device_copy(v);
  int* d8 = device_alloc<int>(64);
  int* d32 = device_alloc<int>(64);
  cudasim::launch(group_sum_kernel<8>, "group_sum_kernel<8>", {1, 64})(dv, d8);
  cudasim::launch(group_sum_kernel<32>, "group_sum_kernel<32>", {2, 32})(dv, d32);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  const std::vector<int> s8 = host_copy(d8, 64), s32 = host_copy(d32, 64);
  for (int i = 0; i < 64; ++i) {
    const int g8 = i / 8 * 8, g32 = i / 32 * 32;  // first lane of the group; values are lane + 1
    EXPECT_EQ(s8[i], 8 * (g8 + 1) + 28) << "lane " << i;    // sum of g8+1 .. g8+8
    EXPECT_EQ(s32[i], 32 * (g32 + 1) + 496) << "lane " << i;  // sum of g32+1 .. g32+32
  }
  for (void* p : {static_cast<void*>(dv), static_cast<void*>(d8), static_cast<void*>(d32)})
    EXPECT_EQ(cudaFree(p), cudaSuccess);
}

TEST_F(Cudasim, ShuffleXorBeyondTheGroupReturnsTheLanesOwnValue) {
  // CUDA: with width < 32 a lane may read an earlier group but gets its own
  // value when the source lane lies in a later group.
  std::vector<float> v(32);
  for (int i = 0; i < 32; ++i) v[i] = static_cast<float>(100 + i);
  float* dv = device_copy(v);
  float* dout = device_alloc<float>(32);
  cudasim::launch(xor_kernel, "xor_kernel", {1, 32})(dv, dout, 8);
  const std::vector<float> out = host_copy(dout, 32);
  for (int i = 0; i < 32; ++i) {
    const int src = i ^ 8;
    const int expected_lane = src >= (i & ~7) + 8 ? i : src;
    EXPECT_EQ(out[i], v[expected_lane]) << "lane " << i;
  }
  cudasim::launch(xor_kernel, "xor_kernel", {1, 32})(dv, dout, 3);
  const std::vector<float> within = host_copy(dout, 32);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(within[i], v[i ^ 3]) << "lane " << i;
  EXPECT_EQ(cudaFree(dv), cudaSuccess);
  EXPECT_EQ(cudaFree(dout), cudaSuccess);
}

TEST_F(Cudasim, SyncthreadsOrdersSharedMemory) {
  std::vector<int> v(3 * 256);
  std::iota(v.begin(), v.end(), 0);
  int* din = device_copy(v);
  int* dout = device_alloc<int>(v.size());
  cudasim::launch(reverse_kernel, "reverse_kernel", {3, 256})(din, dout);
  const std::vector<int> out = host_copy(dout, v.size());
  for (int b = 0; b < 3; ++b)
    for (int t = 0; t < 256; ++t) ASSERT_EQ(out[b * 256 + t], b * 256 + 255 - t) << "block " << b << " thread " << t;
  EXPECT_EQ(cudaFree(din), cudaSuccess);
  EXPECT_EQ(cudaFree(dout), cudaSuccess);
}

TEST_F(Cudasim, ShuffleWithExitedLanesIsAFault) {
  float* d = device_alloc<float>(32);
  cudasim::launch(early_exit_shuffle_kernel, "early_exit_shuffle_kernel", {1, 32})(d, 32);
  EXPECT_EQ(cudaStreamSynchronize(nullptr), cudaSuccess);  // all lanes present: fine
  cudasim::launch(early_exit_shuffle_kernel, "early_exit_shuffle_kernel", {1, 32})(d, 20);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);  // the launch itself is valid
  EXPECT_EQ(cudaStreamSynchronize(nullptr), cudaErrorLaunchFailure);
  // Sticky, as a fault in a CUDA context: every later call reports it.
  EXPECT_EQ(cudaGetLastError(), cudaErrorLaunchFailure);
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, 16), cudaErrorLaunchFailure);
}

TEST_F(Cudasim, DivergentBarrierIsAFault) {
  float* d = device_alloc<float>(64);
  cudasim::launch(divergent_barrier_kernel, "divergent_barrier_kernel", {1, 64})(d);
  EXPECT_EQ(cudaStreamSynchronize(nullptr), cudaErrorLaunchFailure);
}

TEST_F(Cudasim, HostPointerArgumentIsAnIllegalAddress) {
  std::vector<float> host(8, 0.0f);
  cudasim::launch(fill_kernel, "fill_kernel", {1, 32})(host.data(), 1.0f, 8);
  EXPECT_EQ(cudaStreamSynchronize(nullptr), cudaErrorIllegalAddress);
  EXPECT_EQ(host, std::vector<float>(8, 0.0f));  // the kernel never ran
}

TEST_F(Cudasim, BadLaunchConfigurationIsTheLaunchsErrorOnly) {
  float* d = device_alloc<float>(4);
  cudasim::launch(fill_kernel, "fill_kernel", {1, 1025})(d, 1.0f, 4);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);  // read and cleared: not sticky
  cudasim::launch(fill_kernel, "fill_kernel", {dim3(1, 65536), 32})(d, 1.0f, 4);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  cudasim::launch(fill_kernel, "fill_kernel", {1, 32})(d, 2.0f, 4);
  EXPECT_EQ(host_copy(d, 4), std::vector<float>(4, 2.0f));
  EXPECT_EQ(cudaFree(d), cudaSuccess);
}

TEST_F(Cudasim, ReverseOrderExposesARace) {
  int* d = device_alloc<int>(1);
  cudasim::launch(last_writer_kernel, "last_writer_kernel", {3, 64})(d);
  EXPECT_EQ(host_copy(d, 1)[0], 3 * 64 - 1);
  {
    const ScopedEnv reverse("CUDASIM_ORDER", "reverse");
    cudasim::launch(last_writer_kernel, "last_writer_kernel", {3, 64})(d);
    EXPECT_EQ(host_copy(d, 1)[0], 0);
  }
  EXPECT_EQ(cudaFree(d), cudaSuccess);
}

// Every op of the CUDA backend gives the same bits whichever order the
// simulator runs blocks and threads in: no result depends on an order CUDA
// leaves open (what "bit-identical run to run on a GPU" needs).
TEST_F(Cudasim, BackendResultsDoNotDependOnThreadOrder) {
  using gcn::Buffer;
  const int64_t rows = 1000;
  const gcn::CsrMatrix a_csr = gcn::test::random_csr(static_cast<int32_t>(rows), 300, 0.02, 9, 1);
  const auto x_host = gcn::test::random_floats(300 * 16, 2);
  const auto w_host = gcn::test::random_floats(16 * 7, 3);
  std::vector<int32_t> labels(rows);
  std::vector<uint8_t> split(rows);
  for (int64_t i = 0; i < rows; ++i) {
    labels[i] = static_cast<int32_t>((i * 7919) % 7);
    split[i] = static_cast<uint8_t>(i % 8);
  }
  auto run = [&](const char* order, const char* spmm_alg) {
    const ScopedEnv o("CUDASIM_ORDER", order), alg("GCN_SPMM_ALG", spmm_alg);
    auto be = gcn::make_cuda_backend(0);
    auto a = be->upload_csr(a_csr);
    Buffer<float> x(*be, x_host), w(*be, w_host), ax(*be, rows * 16), h(*be, rows * 16), logits(*be, rows * 7);
    Buffer<float> loss(*be, 1), grad(*be, rows * 7), dh(*be, rows * 16), bias_grad(*be, 16), wg(*be, 16 * 7);
    Buffer<float> m(*be, 16 * 7), v(*be, 16 * 7);
    Buffer<int32_t> lab(*be, labels), pred(*be, rows), correct(*be, 3);
    Buffer<uint8_t> spl(*be, split);
    m.zero();
    v.zero();
    be->spmm(*a, {x.data(), 300, 16}, {ax.data(), rows, 16});
    be->relu_dropout_forward({ax.data(), rows, 16}, {h.data(), rows, 16}, 0.5f, 11, 1);
    be->gemm({h.data(), rows, 16}, false, {w.data(), 16, 7}, false, {logits.data(), rows, 7});
    be->log_softmax_nll({logits.data(), rows, 7}, lab.data(), spl.data(), 1, 500, loss.data(), grad.data());
    be->argmax_correct({logits.data(), rows, 7}, lab.data(), spl.data(), pred.data(), correct.data());
    be->gemm({h.data(), rows, 16}, true, {grad.data(), rows, 7}, false, {wg.data(), 16, 7});
    be->gemm({grad.data(), rows, 7}, false, {w.data(), 16, 7}, true, {dh.data(), rows, 16});
    be->relu_dropout_backward({dh.data(), rows, 16}, {h.data(), rows, 16}, {dh.data(), rows, 16}, 0.5f);
    be->column_sum({dh.data(), rows, 16}, bias_grad.data());
    be->adam_step(w.data(), wg.data(), m.data(), v.data(), 16 * 7, gcn::AdamConfig{}, 1);
    std::vector<std::vector<float>> out = {ax.to_host(), h.to_host(),         logits.to_host(), loss.to_host(),
                                           grad.to_host(), bias_grad.to_host(), w.to_host()};
    const auto p = pred.to_host(), c = correct.to_host();
    out.emplace_back(p.begin(), p.end());
    out.emplace_back(c.begin(), c.end());
    return out;
  };
  for (const char* alg : {"alg3", "kernel"}) {
    const auto forward = run("", alg), backward = run("reverse", alg);
    ASSERT_EQ(forward.size(), backward.size());
    for (std::size_t i = 0; i < forward.size(); ++i)
      EXPECT_TRUE(gcn::test::all_equal(forward[i], backward[i])) << "output " << i << " with SpMM " << alg;
  }
}

// The training loop's promise on a GPU: the host waits for the device only
// on the epochs that log (reading their values back), and nothing is
// allocated, and no stream, event, library handle or descriptor created,
// once the first epochs have sized the workspaces.
TEST_F(Cudasim, TrainingWaitsOnlyOnLoggedEpochsAndCreatesNothingPerEpoch) {
  gcn::SyntheticSpec spec;
  spec.nodes = 600;
  spec.features = 48;
  spec.nnz_per_row = 6;
  spec.classes = 4;
  spec.val = 100;
  spec.test = 200;
  const gcn::Dataset data = gcn::make_synthetic(spec);
  auto be = gcn::make_cuda_backend(0);
  uint64_t waits_per_log = 0, launches_per_epoch = 0;
  for (const int k : {1, 4, 8}) {
    gcn::TrainConfig cfg;
    cfg.epochs = 24;
    cfg.log_every = k;
    std::vector<cudasim::Stats> at_log;
    gcn::TrainOptions options;
    options.on_log = [&](const gcn::EpochStats&) { at_log.push_back(cudasim::stats()); };
    gcn::train_gcn(*be, data, cfg, options);
    ASSERT_EQ(at_log.size(), static_cast<std::size_t>(24 / k));
    for (std::size_t i = 1; i < at_log.size(); ++i) {
      const uint64_t waits = at_log[i].host_waits - at_log[i - 1].host_waits;
      const uint64_t launches = at_log[i].launches - at_log[i - 1].launches;
      if (waits_per_log == 0) {
        waits_per_log = waits;
        launches_per_epoch = launches;
      }
      EXPECT_EQ(waits, waits_per_log) << "log every " << k << ", log " << i << ": the unlogged epochs waited";
      EXPECT_EQ(launches, launches_per_epoch * static_cast<uint64_t>(k)) << "log every " << k << ", log " << i;
      EXPECT_EQ(at_log[i].mallocs, at_log[i - 1].mallocs) << "log every " << k << ", log " << i << ": allocated";
      EXPECT_EQ(at_log[i].objects, at_log[i - 1].objects)
          << "log every " << k << ", log " << i << ": created a stream, event, handle or descriptor";
    }
  }
  EXPECT_GT(launches_per_epoch, 0u);
  EXPECT_GE(waits_per_log, 1u);  // the logged values are read back
  EXPECT_LE(waits_per_log, 3u);  // loss, validation loss and counts: at most one wait each
}

// ---- the runtime ----------------------------------------------------------------

// CUDASIM_TRACE=1 names each operation as it is queued, before it runs.
TEST_F(Cudasim, TraceNamesEachQueuedOperation) {
  float* d = device_alloc<float>(4);
  const std::vector<float> src(4, 1.0f);
  ::testing::internal::CaptureStderr();
  {
    const ScopedEnv trace("CUDASIM_TRACE", "1");
    ASSERT_EQ(cudaMemcpyAsync(d, src.data(), sizeof(float) * 4, cudaMemcpyHostToDevice, nullptr), cudaSuccess);
    cudasim::launch(fill_kernel, "fill_kernel", {1, 32})(d, 3.0f, 4);
  }
  cudasim::launch(fill_kernel, "fill_kernel", {1, 32})(d, 4.0f, 4);  // not traced
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(log, "cudasim: queued cudaMemcpyAsync\ncudasim: queued fill_kernel\n");
  EXPECT_EQ(host_copy(d, 4), std::vector<float>(4, 4.0f));
  EXPECT_EQ(cudaFree(d), cudaSuccess);
}

TEST_F(Cudasim, CopiesArePageableAndKernelsWaitForTheHost) {
  float* d = device_alloc<float>(4);
  // Fresh device memory reads as NaN (cudaMalloc does not zero it); a copy to
  // pageable host memory has completed when it returns.
  std::vector<float> host(4, 7.0f);
  ASSERT_EQ(cudaMemcpyAsync(host.data(), d, sizeof(float) * 4, cudaMemcpyDeviceToHost, nullptr), cudaSuccess);
  for (float x : host) EXPECT_TRUE(std::isnan(x));
  // A copy from pageable memory has taken the source when it returns.
  std::vector<float> src(4, 5.0f);
  ASSERT_EQ(cudaMemcpyAsync(d, src.data(), sizeof(float) * 4, cudaMemcpyHostToDevice, nullptr), cudaSuccess);
  src.assign(4, -1.0f);
  EXPECT_EQ(host_copy(d, 4), std::vector<float>(4, 5.0f));
  // A kernel runs when the host waits (here: for an event after it).
  cudaEvent_t done = nullptr;
  ASSERT_EQ(cudaEventCreate(&done), cudaSuccess);
  cudasim::launch(fill_kernel, "fill_kernel", {1, 32})(d, 3.0f, 4);
  ASSERT_EQ(cudaEventRecord(done, nullptr), cudaSuccess);
  float ms = 0.0f;
  EXPECT_EQ(cudaEventElapsedTime(&ms, done, done), cudaErrorNotReady);
  (void)cudaGetLastError();
  ASSERT_EQ(cudaEventSynchronize(done), cudaSuccess);
  EXPECT_EQ(cudaEventElapsedTime(&ms, done, done), cudaSuccess);
  EXPECT_EQ(host_copy(d, 4), std::vector<float>(4, 3.0f));
  EXPECT_EQ(cudaEventDestroy(done), cudaSuccess);
  EXPECT_EQ(cudaFree(d), cudaSuccess);
}

TEST_F(Cudasim, CopiesMustMatchTheirKind) {
  float* d = device_alloc<float>(4);
  std::vector<float> host(8, 0.0f);
  EXPECT_EQ(cudaMemcpyAsync(host.data(), d, 4 * sizeof(float), cudaMemcpyHostToDevice, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  EXPECT_EQ(cudaMemcpyAsync(d, host.data(), 8 * sizeof(float), cudaMemcpyHostToDevice, nullptr), cudaErrorInvalidValue)
      << "a copy past the end of the block";
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  EXPECT_EQ(cudaMemsetAsync(host.data(), 0, 4, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  EXPECT_EQ(cudaFree(host.data()), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  EXPECT_EQ(cudaFree(d), cudaSuccess);
}

TEST_F(Cudasim, EventsTimeOnlyCompletedWork) {
  cudaEvent_t a = nullptr, b = nullptr;
  ASSERT_EQ(cudaEventCreate(&a), cudaSuccess);
  ASSERT_EQ(cudaEventCreate(&b), cudaSuccess);
  float ms = -1.0f;
  EXPECT_EQ(cudaEventElapsedTime(&ms, a, b), cudaErrorInvalidResourceHandle);  // never recorded
  (void)cudaGetLastError();
  ASSERT_EQ(cudaEventRecord(a, nullptr), cudaSuccess);
  ASSERT_EQ(cudaEventRecord(b, nullptr), cudaSuccess);
  EXPECT_EQ(cudaEventElapsedTime(&ms, a, b), cudaErrorNotReady);
  (void)cudaGetLastError();
  ASSERT_EQ(cudaEventSynchronize(b), cudaSuccess);
  ASSERT_EQ(cudaEventElapsedTime(&ms, a, b), cudaSuccess);
  EXPECT_GE(ms, 0.0f);
  EXPECT_EQ(cudaEventDestroy(a), cudaSuccess);
  EXPECT_EQ(cudaEventDestroy(b), cudaSuccess);
}

// ---- the libraries, on matrices worked by hand -----------------------------------

TEST_F(Cudasim, SgemmIsColumnMajor) {
  // Column-major A (2x3) = [1 2 3; 4 5 6] is stored 1 4 2 5 3 6; B (3x2) =
  // [1 0; 0 1; 1 1] is stored 1 0 1 0 1 1. A*B = [4 5; 10 11].
  float* a = device_copy(std::vector<float>{1, 4, 2, 5, 3, 6});
  float* b = device_copy(std::vector<float>{1, 0, 1, 0, 1, 1});
  float* c = device_copy(std::vector<float>(4, NAN));  // beta = 0: C is never read
  cublasHandle_t h = nullptr;
  ASSERT_EQ(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
  const float one = 1.0f, zero = 0.0f;
  ASSERT_EQ(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &one, a, 2, b, 3, &zero, c, 2), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(host_copy(c, 4), (std::vector<float>{4, 10, 5, 11}));
  // Both transposed: C (3x3) = Aᵀ (3x2) * Bᵀ (2x3).
  float* c3 = device_copy(std::vector<float>(9, NAN));
  ASSERT_EQ(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_T, 3, 3, 2, &one, a, 2, b, 3, &zero, c3, 3), CUBLAS_STATUS_SUCCESS);
  // Aᵀ = [1 4; 2 5; 3 6], Bᵀ = [1 0 1; 0 1 1]: product rows [1 4 5; 2 5 7; 3 6 9].
  EXPECT_EQ(host_copy(c3, 9), (std::vector<float>{1, 2, 3, 4, 5, 6, 5, 7, 9}));
  // lda below the rows of A is refused as cuBLAS documents.
  EXPECT_EQ(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &one, a, 1, b, 3, &zero, c, 2),
            CUBLAS_STATUS_INVALID_VALUE);
  // A matrix that reaches past its allocation is an illegal address.
  EXPECT_EQ(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &one, a, 3, b, 3, &zero, c, 2),
            CUBLAS_STATUS_EXECUTION_FAILED);
  EXPECT_EQ(cudaStreamSynchronize(nullptr), cudaErrorIllegalAddress);
  cublasDestroy(h);
}

TEST_F(Cudasim, SpmmRowAndColumnMajor) {
  // A (2x3) = [1 0 2; 0 3 0] in CSR; B (3x2) = [1 2; 3 4; 5 6]; A*B = [11 14; 9 12].
  int32_t* indptr = device_copy(std::vector<int32_t>{0, 2, 3});
  int32_t* indices = device_copy(std::vector<int32_t>{0, 2, 1});
  float* values = device_copy(std::vector<float>{1, 2, 3});
  float* b_row = device_copy(std::vector<float>{1, 2, 3, 4, 5, 6});
  float* b_col = device_copy(std::vector<float>{1, 3, 5, 2, 4, 6});
  float* c = device_copy(std::vector<float>(4, NAN));
  void* buffer = nullptr;
  cusparseHandle_t h = nullptr;
  ASSERT_EQ(cusparseCreate(&h), CUSPARSE_STATUS_SUCCESS);
  cusparseSpMatDescr_t a = nullptr;
  ASSERT_EQ(cusparseCreateCsr(&a, 2, 3, 3, indptr, indices, values, CUSPARSE_INDEX_32I, CUSPARSE_INDEX_32I,
                              CUSPARSE_INDEX_BASE_ZERO, CUDA_R_32F),
            CUSPARSE_STATUS_SUCCESS);
  const float one = 1.0f, zero = 0.0f;
  for (const cusparseOrder_t order : {CUSPARSE_ORDER_ROW, CUSPARSE_ORDER_COL}) {
    const bool row = order == CUSPARSE_ORDER_ROW;
    cusparseConstDnMatDescr_t b = nullptr;
    cusparseDnMatDescr_t cd = nullptr;
    ASSERT_EQ(cusparseCreateConstDnMat(&b, 3, 2, row ? 2 : 3, row ? b_row : b_col, CUDA_R_32F, order),
              CUSPARSE_STATUS_SUCCESS);
    ASSERT_EQ(cusparseCreateDnMat(&cd, 2, 2, 2, c, CUDA_R_32F, order), CUSPARSE_STATUS_SUCCESS);
    std::size_t bytes = 0;
    ASSERT_EQ(cusparseSpMM_bufferSize(h, CUSPARSE_OPERATION_NON_TRANSPOSE, CUSPARSE_OPERATION_NON_TRANSPOSE, &one, a,
                                      b, &zero, cd, CUDA_R_32F, CUSPARSE_SPMM_CSR_ALG3, &bytes),
              CUSPARSE_STATUS_SUCCESS);
    if (buffer == nullptr) ASSERT_EQ(cudaMalloc(&buffer, bytes), cudaSuccess);
    ASSERT_EQ(cusparseSpMM(h, CUSPARSE_OPERATION_NON_TRANSPOSE, CUSPARSE_OPERATION_NON_TRANSPOSE, &one, a, b, &zero,
                           cd, CUDA_R_32F, CUSPARSE_SPMM_CSR_ALG3, buffer),
              CUSPARSE_STATUS_SUCCESS);
    const std::vector<float> got = host_copy(c, 4);
    EXPECT_EQ(got, row ? (std::vector<float>{11, 14, 9, 12}) : (std::vector<float>{11, 9, 14, 12}));
    // A leading dimension below the row length (row-major) is refused.
    cusparseDnMatDescr_t bad = nullptr;
    EXPECT_EQ(cusparseCreateDnMat(&bad, 2, 2, 1, c, CUDA_R_32F, order), CUSPARSE_STATUS_INVALID_VALUE);
    cusparseDestroyDnMat(b);
    cusparseDestroyDnMat(cd);
  }
  // Without the workspace cusparseSpMM_bufferSize asked for: an illegal address.
  cusparseConstDnMatDescr_t b = nullptr;
  cusparseDnMatDescr_t cd = nullptr;
  ASSERT_EQ(cusparseCreateConstDnMat(&b, 3, 2, 2, b_row, CUDA_R_32F, CUSPARSE_ORDER_ROW), CUSPARSE_STATUS_SUCCESS);
  ASSERT_EQ(cusparseCreateDnMat(&cd, 2, 2, 2, c, CUDA_R_32F, CUSPARSE_ORDER_ROW), CUSPARSE_STATUS_SUCCESS);
  EXPECT_EQ(cusparseSpMM(h, CUSPARSE_OPERATION_NON_TRANSPOSE, CUSPARSE_OPERATION_NON_TRANSPOSE, &one, a, b, &zero, cd,
                         CUDA_R_32F, CUSPARSE_SPMM_CSR_ALG3, nullptr),
            CUSPARSE_STATUS_EXECUTION_FAILED);
  EXPECT_EQ(cudaGetLastError(), cudaErrorIllegalAddress);
  cusparseDestroyDnMat(b);
  cusparseDestroyDnMat(cd);
  cusparseDestroySpMat(a);
  cusparseDestroy(h);
}

// ---- the CUDA backend's paths a GPU reaches only by accident ---------------------

TEST_F(Cudasim, BackendOutOfMemoryIsOneLineWithTheSizes) {
  const ScopedEnv small("CUDASIM_MEMORY_MIB", "40");  // the 32 MiB cuBLAS workspace fits, 16 MiB more does not
  auto be = gcn::make_cuda_backend(0);
  try {
    gcn::Buffer<float> big(*be, int64_t{4} << 20);
    ADD_FAILURE() << "a 16 MiB allocation with 8 MiB free succeeded";
  } catch (const gcn::DeviceError& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    EXPECT_NE(what.find("cannot allocate 16777216 bytes (16.0 MiB)"), std::string::npos) << what;
    EXPECT_NE(what.find("MiB free of 40.0 MiB"), std::string::npos) << what;
  }
  // Not sticky: the backend goes on working.
  gcn::Buffer<float> ok(*be, std::vector<float>{1, 2, 3});
  EXPECT_EQ(ok.to_host(), (std::vector<float>{1, 2, 3}));
}

TEST_F(Cudasim, BackendWithoutADeviceSaysSo) {
  const ScopedEnv none("CUDASIM_DEVICES", "0");
  std::string why;
  EXPECT_EQ(gcn::cuda_device_count(&why), 0);
  EXPECT_NE(why.find("no CUDA-capable device"), std::string::npos) << why;
  EXPECT_THROW(gcn::make_cuda_backend(0), gcn::DeviceError);
  const ScopedEnv two("CUDASIM_DEVICES", "2");
  EXPECT_EQ(gcn::cuda_device_count(&why), 2);
  EXPECT_NE(gcn::make_cuda_backend(1)->describe().find("cuda:1 cudasim 1"), std::string::npos);
  EXPECT_THROW(gcn::make_cuda_backend(2), gcn::DeviceError);
}

TEST_F(Cudasim, BackendFallsBackToItsKernelWhenCusparseRefuses) {
  const gcn::CsrMatrix csr = gcn::test::random_csr(60, 50, 0.1, 7, 5);
  const auto b_host = gcn::test::random_floats(50 * 9, 6);
  auto run = [&](gcn::Backend& be) {
    auto a = be.upload_csr(csr);
    gcn::Buffer<float> b(be, b_host), c(be, std::vector<float>(60 * 9, NAN));
    be.spmm(*a, {b.data(), 50, 9}, {c.data(), 60, 9});
    return c.to_host();
  };
  auto cpu = gcn::make_cpu_backend(1);
  const std::vector<float> ref = run(*cpu);
  const ScopedEnv refuse("CUDASIM_SPMM_NOT_SUPPORTED", "1");
  auto gpu = gcn::make_cuda_backend(0);
  // Our kernel rounds as the CPU does (no FMA), and sums in the same order.
  EXPECT_TRUE(gcn::test::all_equal(run(*gpu), ref));
}

}  // namespace

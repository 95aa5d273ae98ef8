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

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "gcn/backend/backend.hpp"
#include "gcn/backend/buffer.hpp"
#include "gcn/backend/devices.hpp"
#include "gcn/error.hpp"
#include "gcn/data/synthetic.hpp"
#include "gcn/train/trainer.hpp"
#include "test_compare.hpp"
#include "test_random.hpp"
#include "test_step.hpp"
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

// Counts its runs.
__global__ void increment_kernel(int* counter) {
  if (blockIdx.x == 0 && threadIdx.x == 0) *counter += 1;
}

// "Last block done" (the CUDA programming guide's __threadfence example):
// each block writes its partial sum, and the block that draws the last ticket
// sums the partials in block order, so the total has the same bits whichever
// block finishes last; that block also resets the tickets for the next launch.
__global__ void last_block_sum_kernel(const float* v, float* partial, unsigned* tickets, float* total) {
  __shared__ bool is_last;
  const unsigned b = blockIdx.x;
  if (threadIdx.x == 0) {
    float sum = 0.0f;
    for (unsigned i = 0; i < blockDim.x; ++i) sum += v[b * blockDim.x + i];
    partial[b] = sum;
    __threadfence();  // the partial is visible to every block before the ticket is drawn
    is_last = atomicAdd(tickets, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (is_last && threadIdx.x == 0) {
    float sum = 0.0f;
    for (unsigned i = 0; i < gridDim.x; ++i) sum += partial[i];
    *total = sum;
    *tickets = 0;
  }
}

// olds[i] = thread i's atomicInc(inc, 2); every thread adds 2^32 + 1 to *sum.
__global__ void atomics_kernel(unsigned* inc, unsigned* olds, unsigned long long* sum) {
  olds[threadIdx.x] = atomicInc(inc, 2u);
  atomicAdd(sum, 0x100000001ull);
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
// leaves open (what "bit-identical run to run on a GPU" needs). The matrix
// has rows longer than one SpMM segment, so our kernel's cut rows (added up
// by whichever segment finishes last) are in it.
TEST_F(Cudasim, BackendResultsDoNotDependOnThreadOrder) {
  using gcn::Buffer;
  const int64_t rows = 1000;
  gcn::CsrMatrix a_csr = gcn::test::random_csr(static_cast<int32_t>(rows), 300, 0.02, 9, 1);
  // Rows 0, 1 and 2 get 130, 290 and all 300 entries (two and three segments).
  {
    gcn::CsrMatrix long_rows;
    long_rows.n_rows = a_csr.n_rows;
    long_rows.n_cols = a_csr.n_cols;
    long_rows.indptr = {0};
    for (int32_t r = 0; r < a_csr.n_rows; ++r) {
      const int32_t n = r == 0 ? 130 : r == 1 ? 290 : r == 2 ? 300 : -1;
      if (n < 0) {
        for (int32_t e = a_csr.indptr[r]; e < a_csr.indptr[r + 1]; ++e) {
          long_rows.indices.push_back(a_csr.indices[e]);
          long_rows.values.push_back(a_csr.values[e]);
        }
      } else {
        for (int32_t j = 0; j < n; ++j) {
          long_rows.indices.push_back(j * 300 / n);
          long_rows.values.push_back(0.01f * static_cast<float>((j * 7) % 13) - 0.05f);
        }
      }
      long_rows.indptr.push_back(static_cast<int32_t>(long_rows.indices.size()));
    }
    a_csr = std::move(long_rows);
  }
  const auto x_host = gcn::test::random_floats(300 * 16, 2);
  const auto w_host = gcn::test::random_floats(16 * 7, 3);
  const auto b_host = gcn::test::random_floats(16, 4);
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
    Buffer<float> x(*be, x_host), w(*be, w_host), b1(*be, b_host), ax(*be, rows * 16), h(*be, rows * 16);
    Buffer<float> logits(*be, rows * 7), grad(*be, rows * 7), dh(*be, rows * 16), dp(*be, rows * 16);
    Buffer<float> bias_grad(*be, 7), b1_grad(*be, 16), wg(*be, 16 * 7), m(*be, 16 * 7), v(*be, 16 * 7);
    Buffer<float> best(*be, 16 * 7);
    Buffer<int32_t> lab(*be, labels);
    Buffer<uint8_t> spl(*be, split);
    gcn::StepState initial{};
    initial.epoch = 3;
    initial.dropout_seed = 11;
    gcn::test::StepRing sr(*be, initial, 2);
    m.zero();
    v.zero();
    const gcn::OutputInit init{{ax.data(), rows, 16}, b1.data()};
    be->prepare_outputs(&init, 1);
    be->spmm(*a, {x.data(), 300, 16}, {ax.data(), rows, 16}, b1.data(), /*prepared=*/true);
    be->relu_dropout_forward({ax.data(), rows, 16}, {h.data(), rows, 16}, 0.5f, sr.state());
    be->gemm({h.data(), rows, 16}, false, {w.data(), 16, 7}, false, {logits.data(), rows, 7});
    be->classifier_loss({logits.data(), rows, 7}, lab.data(), spl.data(), 1, 500, {grad.data(), rows, 7},
                        bias_grad.data(), sr.state(), sr.ring());
    be->gemm({h.data(), rows, 16}, true, {grad.data(), rows, 7}, false, {wg.data(), 16, 7});
    be->gemm({grad.data(), rows, 7}, false, {w.data(), 16, 7}, true, {dh.data(), rows, 16});
    be->relu_dropout_backward({dh.data(), rows, 16}, {h.data(), rows, 16}, {dp.data(), rows, 16}, 0.5f,
                              b1_grad.data());
    be->adam_step(w.data(), wg.data(), m.data(), v.data(), 16 * 7, gcn::AdamConfig{}, sr.state());
    be->evaluate({logits.data(), rows, 7}, lab.data(), spl.data(), 250, sr.state(), sr.ring(), /*advance=*/true);
    be->copy_if_improved(best.data(), w.data(), best.bytes(), sr.state());
    const gcn::EpochMetrics slot = sr.slot(1);
    std::vector<std::vector<float>> out = {ax.to_host(),   h.to_host(),       logits.to_host(), grad.to_host(),
                                           bias_grad.to_host(), dp.to_host(), b1_grad.to_host(), w.to_host(),
                                           best.to_host()};
    out.push_back({slot.loss, slot.val_loss, static_cast<float>(slot.correct[0]), static_cast<float>(slot.correct[1]),
                   static_cast<float>(slot.correct[2]), static_cast<float>(slot.epoch)});
    const gcn::StepState after = sr.get();
    out.push_back({static_cast<float>(after.epoch), static_cast<float>(after.best_epoch),
                   static_cast<float>(after.improved)});
    return out;
  };
  for (const char* alg : {"alg3", "kernel"}) {
    const auto forward = run("", alg), backward = run("reverse", alg);
    ASSERT_EQ(forward.size(), backward.size());
    for (std::size_t i = 0; i < forward.size(); ++i)
      EXPECT_TRUE(gcn::test::all_equal(forward[i], backward[i])) << "output " << i << " with SpMM " << alg;
    const std::vector<float>& state = forward.back();
    EXPECT_EQ(state, (std::vector<float>{4.0f, 4.0f, 1.0f}));  // advanced to 4 epochs; epoch 4 is the first evaluated
    EXPECT_EQ(forward[forward.size() - 2][5], 4.0f);             // the slot names its epoch
    EXPECT_TRUE(gcn::test::all_equal(forward[8], forward[7]));   // improved: the best weights are the step's
  }
}

// The batched ops (three models as column blocks, each with its own rates,
// stream and epoch; model 1 stopped) give the same bits whichever order the
// simulator runs blocks and threads in, like the single-model ops above.
TEST_F(Cudasim, BatchedBackendResultsDoNotDependOnThreadOrder) {
  using gcn::Buffer;
  constexpr int kBatch = 3;
  const int64_t rows = 700, in = 12, hidden = 16, classes = 7;
  const auto x_host = gcn::test::random_floats(rows * in, 5);
  const auto w1_host = gcn::test::random_floats(in * hidden * kBatch, 6);
  const auto w2_host = gcn::test::random_floats(hidden * classes * kBatch, 7);
  std::vector<int32_t> labels(rows);
  std::vector<uint8_t> split(rows);
  for (int64_t i = 0; i < rows; ++i) {
    labels[i] = static_cast<int32_t>((i * 7919) % classes);
    split[i] = static_cast<uint8_t>(i % 8);
  }
  std::vector<gcn::StepState> states(kBatch);
  for (int k = 0; k < kBatch; ++k) {
    states[k].epoch = 3 + k;
    states[k].dropout_seed = 11 + k;
    states[k].dropout = 0.25f * static_cast<float>(k);
    states[k].lr = 0.01f * static_cast<float>(k + 1);
    states[k].weight_decay = 5e-4f;
    states[k].stopped = k == 1 ? 1 : 0;
  }
  gcn::ParamBlocks blocks;
  blocks.count = 1;
  blocks.block[0] = {0, hidden, classes};
  auto run = [&](const char* order) {
    const ScopedEnv o("CUDASIM_ORDER", order);
    auto be = gcn::make_cuda_backend(0);
    Buffer<float> x(*be, x_host), w1(*be, w1_host), w2(*be, w2_host), best(*be, w2_host);
    Buffer<float> z(*be, rows * hidden * kBatch), h(*be, rows * hidden * kBatch), logits(*be, rows * classes * kBatch);
    Buffer<float> grad(*be, rows * classes * kBatch), bias_grad(*be, classes * kBatch), w2g(*be, w2_host.size());
    Buffer<float> dh(*be, rows * hidden * kBatch), b1g(*be, hidden * kBatch), m(*be, w2_host.size()),
        v(*be, w2_host.size());
    Buffer<int32_t> lab(*be, labels);
    Buffer<uint8_t> spl(*be, split);
    Buffer<uint8_t> st(*be, static_cast<int64_t>(sizeof(gcn::StepState) * kBatch));
    Buffer<uint8_t> ring(*be, static_cast<int64_t>(sizeof(gcn::EpochMetrics) * 2 * kBatch));
    be->upload(st.data(), states.data(), sizeof(gcn::StepState) * kBatch);
    ring.zero();
    m.zero();
    v.zero();
    auto* steps = reinterpret_cast<gcn::StepState*>(st.data());
    const gcn::MetricsRing mr{reinterpret_cast<gcn::EpochMetrics*>(ring.data()), 2};
    // X, shared by every model, times all their W1 blocks at once: one plain product.
    be->gemm({x.data(), rows, in}, false, {w1.data(), in, hidden * kBatch}, false, {z.data(), rows, hidden * kBatch});
    be->batch_relu_dropout_forward({z.data(), rows, hidden * kBatch}, {h.data(), rows, hidden * kBatch}, steps, kBatch);
    be->gemm({h.data(), rows, hidden * kBatch}, false, {w2.data(), hidden, classes * kBatch}, false,
             {logits.data(), rows, classes * kBatch}, kBatch);
    be->classifier_loss({logits.data(), rows, classes * kBatch}, lab.data(), spl.data(), 1, 350,
                        {grad.data(), rows, classes * kBatch}, bias_grad.data(), steps, mr, kBatch);
    be->gemm({h.data(), rows, hidden * kBatch}, true, {grad.data(), rows, classes * kBatch}, false,
             {w2g.data(), hidden, classes * kBatch}, kBatch);
    be->gemm({grad.data(), rows, classes * kBatch}, false, {w2.data(), hidden, classes * kBatch}, true,
             {dh.data(), rows, hidden * kBatch}, kBatch);
    be->batch_relu_dropout_backward({dh.data(), rows, hidden * kBatch}, {h.data(), rows, hidden * kBatch},
                                    {dh.data(), rows, hidden * kBatch}, steps, kBatch, b1g.data());
    be->batch_adam_step(w2.data(), w2g.data(), m.data(), v.data(), blocks, gcn::AdamConfig{}, steps, kBatch);
    be->evaluate({logits.data(), rows, classes * kBatch}, lab.data(), spl.data(), 175, steps, mr, true, kBatch);
    be->batch_copy_if_improved(best.data(), w2.data(), blocks, steps, kBatch);
    std::vector<std::vector<float>> out = {z.to_host(),  h.to_host(),   logits.to_host(), grad.to_host(),
                                           bias_grad.to_host(), w2g.to_host(), dh.to_host(), b1g.to_host(),
                                           w2.to_host(), best.to_host()};
    std::vector<float> bytes(sizeof(gcn::StepState) * kBatch / sizeof(float));
    be->download(bytes.data(), st.data(), sizeof(gcn::StepState) * kBatch);
    out.push_back(bytes);
    std::vector<float> slots(sizeof(gcn::EpochMetrics) * 2 * kBatch / sizeof(float));
    be->download(slots.data(), ring.data(), sizeof(gcn::EpochMetrics) * 2 * kBatch);
    out.push_back(slots);
    return out;
  };
  const auto forward = run(""), backward = run("reverse");
  ASSERT_EQ(forward.size(), backward.size());
  for (std::size_t i = 0; i < forward.size(); ++i)
    EXPECT_TRUE(gcn::test::same_bits(forward[i], backward[i])) << "output " << i;
}

namespace {
// Trains `data` for `epochs` epochs and returns what the stream queued (the
// CUDASIM_TRACE lines "cudasim: queued ...").
std::vector<std::string> queued_operations(gcn::Backend& be, const gcn::Dataset& data, int epochs, bool graph) {
  gcn::TrainConfig cfg;
  cfg.epochs = epochs;
  cfg.log_every = 1000;
  cfg.cuda_graph = graph;
  ::testing::internal::CaptureStderr();
  {
    const ScopedEnv trace("CUDASIM_TRACE", "1");
    gcn::train_gcn(be, data, cfg, gcn::TrainOptions{});
  }
  const std::string log = ::testing::internal::GetCapturedStderr();
  std::vector<std::string> queued;
  std::size_t at = 0;
  const std::string prefix = "cudasim: queued ";
  while ((at = log.find(prefix, at)) != std::string::npos) {
    const std::size_t end = log.find('\n', at);
    queued.push_back(log.substr(at + prefix.size(), end - at - prefix.size()));
    at = end;
  }
  return queued;
}
}  // namespace

// What one epoch (training step and evaluation) asks of the GPU, counted as
// the difference between a 3- and a 2-epoch run: with --cuda-graph off at
// most 20 queued operations (issue 13; 43 before the epoch was planned as
// one program), with it on one graph launch and nothing else.
TEST_F(Cudasim, AnEpochIsAtMostTwentyOperationsOrOneGraphLaunch) {
  gcn::SyntheticSpec spec;
  spec.nodes = 300;
  spec.features = 40;
  spec.nnz_per_row = 5;
  spec.classes = 5;
  spec.val = 60;
  spec.test = 100;
  const gcn::Dataset data = gcn::make_synthetic(spec);
  auto be = gcn::make_cuda_backend(0);
  const auto off2 = queued_operations(*be, data, 2, false), off3 = queued_operations(*be, data, 3, false);
  const auto on2 = queued_operations(*be, data, 2, true), on3 = queued_operations(*be, data, 3, true);
  EXPECT_LE(off3.size() - off2.size(), 20u);
  EXPECT_GE(off3.size() - off2.size(), 10u);  // the count is of real work, not of nothing
  ASSERT_EQ(on3.size(), on2.size() + 1);
  // The extra operation is the third epoch's graph launch; the second epoch
  // was one too (the first runs op by op and is then recorded).
  EXPECT_EQ(std::count(on3.begin(), on3.end(), "cudaGraphLaunch"), 2);
  EXPECT_EQ(std::count(on2.begin(), on2.end(), "cudaGraphLaunch"), 1);
  EXPECT_EQ(std::count(off3.begin(), off3.end(), "cudaGraphLaunch"), 0);
}

// The training loop's promise on a GPU: the host waits for the device only
// on the epochs it reads back (--log-every), once each, and nothing is
// allocated, and no stream, event, library handle, descriptor or graph
// created, once the first epochs have sized the workspaces (and recorded the
// epoch). With --select best-val and --patience too: both are decided on
// the device. Each epoch is one graph launch, or a fixed number of kernels.
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
  for (const bool graph : {true, false}) {
    for (const bool best_val : {false, true}) {
      uint64_t launches_per_epoch = ~uint64_t{0};
      for (const int k : {1, 4, 8}) {
        gcn::TrainConfig cfg;
        cfg.epochs = 24;
        cfg.log_every = k;
        cfg.cuda_graph = graph;
        if (best_val) {
          cfg.select = gcn::Selection::kBestVal;
          cfg.patience = 1000;
        }
        std::vector<cudasim::Stats> at_log;
        gcn::TrainOptions options;
        options.on_log = [&](const gcn::EpochStats&) { at_log.push_back(cudasim::stats()); };
        const gcn::TrainResult r = gcn::train_gcn(*be, data, cfg, options);
        EXPECT_EQ(r.graph_replayed, graph);
        ASSERT_EQ(at_log.size(), static_cast<std::size_t>(24 / k));
        const std::string where = std::string(graph ? "graph" : "no graph") + (best_val ? ", best-val" : "") +
                                  ", log every " + std::to_string(k);
        for (std::size_t i = 1; i < at_log.size(); ++i) {
          // After the warm-up: the first epoch sizes the workspaces, the
          // second is recorded (a graph and its executable are created), and
          // the trainer reads back once more at the fifth (the end of its
          // timing warm-up).
          if (static_cast<int>(i) * k < 5) continue;
          const cudasim::Stats& a = at_log[i - 1];
          const cudasim::Stats& b = at_log[i];
          EXPECT_EQ(b.host_waits - a.host_waits, 1u) << where << ", log " << i << ": waits";
          EXPECT_EQ(b.mallocs, a.mallocs) << where << ", log " << i << ": allocated";
          EXPECT_EQ(b.pinned_mallocs, a.pinned_mallocs) << where << ", log " << i << ": allocated pinned memory";
          EXPECT_EQ(b.objects, a.objects) << where << ", log " << i << ": created an object";
          const uint64_t launches = b.launches - a.launches;
          if (graph) {
            EXPECT_EQ(b.graph_launches - a.graph_launches, static_cast<uint64_t>(k)) << where << ", log " << i;
            EXPECT_EQ(launches, 0u) << where << ", log " << i << ": kernels outside the graph";
          } else {
            EXPECT_EQ(b.graph_launches, a.graph_launches) << where;
            if (launches_per_epoch == ~uint64_t{0}) launches_per_epoch = launches / static_cast<uint64_t>(k);
            EXPECT_EQ(launches, launches_per_epoch * static_cast<uint64_t>(k)) << where << ", log " << i;
          }
        }
      }
      if (!graph) EXPECT_GT(launches_per_epoch, 0u);
    }
  }
}

// A recorded epoch replays bit-identically to the same epochs queued op by
// op, with the per-epoch values (dropout stream, Adam's step, the best epoch)
// read from the step state on the device.
TEST_F(Cudasim, GraphReplayTrainsBitIdenticallyToQueuedOps) {
  gcn::SyntheticSpec spec;
  spec.nodes = 400;
  spec.features = 30;
  spec.nnz_per_row = 5;
  spec.classes = 3;
  spec.val = 80;
  spec.test = 150;
  const gcn::Dataset data = gcn::make_synthetic(spec);
  auto be = gcn::make_cuda_backend(0);
  gcn::TrainConfig cfg;
  cfg.epochs = 30;
  cfg.select = gcn::Selection::kBestVal;
  cfg.patience = 8;
  cfg.log_every = 5;
  cfg.cuda_graph = false;
  const gcn::TrainResult off = gcn::train_gcn(*be, data, cfg, gcn::TrainOptions{});
  cfg.cuda_graph = true;
  const gcn::TrainResult on = gcn::train_gcn(*be, data, cfg, gcn::TrainOptions{});
  EXPECT_TRUE(on.graph_replayed);
  EXPECT_EQ(on.params, off.params);
  EXPECT_EQ(on.best_epoch, off.best_epoch);
  EXPECT_EQ(on.stopped_early, off.stopped_early);
  ASSERT_EQ(on.history.size(), off.history.size());
  for (std::size_t i = 0; i < on.history.size(); ++i) {
    EXPECT_EQ(on.history[i].loss, off.history[i].loss) << i;
    EXPECT_EQ(on.history[i].val_loss, off.history[i].val_loss) << i;
    EXPECT_EQ(on.history[i].test_acc, off.history[i].test_acc) << i;
  }
}

TEST_F(Cudasim, LastBlockDoneSumsInBlockOrderEitherWay) {
  const int blocks = 5, threads = 32;
  std::vector<float> v(blocks * threads);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::ldexp(1.0f + static_cast<float>(i % 7), static_cast<int>(i % 29) - 14);
  float expected = 0.0f;  // block sums, then their sum in block order
  for (int b = 0; b < blocks; ++b) {
    float sum = 0.0f;
    for (int t = 0; t < threads; ++t) sum += v[b * threads + t];
    expected += sum;
  }
  float* dv = device_copy(v);
  float* partial = device_alloc<float>(blocks);
  float* total = device_alloc<float>(1);
  unsigned* tickets = device_copy(std::vector<unsigned>{0});
  for (const char* order : {"", "reverse"}) {
    const ScopedEnv o("CUDASIM_ORDER", order);
    for (int launch = 0; launch < 2; ++launch) {  // the last block left the tickets at 0
      cudasim::launch(last_block_sum_kernel, "last_block_sum_kernel", {blocks, threads})(dv, partial, tickets, total);
      EXPECT_EQ(host_copy(total, 1)[0], expected) << "order '" << order << "', launch " << launch;
      EXPECT_EQ(host_copy(tickets, 1)[0], 0u);
    }
  }
  for (void* p : {static_cast<void*>(dv), static_cast<void*>(partial), static_cast<void*>(total),
                  static_cast<void*>(tickets)})
    EXPECT_EQ(cudaFree(p), cudaSuccess);
}

TEST_F(Cudasim, AtomicIncWrapsAndAtomicAddTakes64Bits) {
  unsigned* inc = device_copy(std::vector<unsigned>{0});
  unsigned* olds = device_alloc<unsigned>(8);
  unsigned long long* sum = device_copy(std::vector<unsigned long long>{0});
  cudasim::launch(atomics_kernel, "atomics_kernel", {1, 8})(inc, olds, sum);
  // atomicInc stores ((old >= 2) ? 0 : old + 1): in whatever order the
  // threads come, they see 0 1 2 0 1 2 0 1.
  std::vector<unsigned> seen = host_copy(olds, 8);
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<unsigned>{0, 0, 0, 1, 1, 1, 2, 2}));
  EXPECT_EQ(host_copy(inc, 1)[0], 2u);
  EXPECT_EQ(host_copy(sum, 1)[0], 8 * 0x100000001ull);
  for (void* p : {static_cast<void*>(inc), static_cast<void*>(olds), static_cast<void*>(sum)})
    EXPECT_EQ(cudaFree(p), cudaSuccess);
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

// ---- stream capture, graphs and pinned memory ----------------------------------------

cudaStream_t new_stream(unsigned flags = cudaStreamNonBlocking) {
  cudaStream_t s = nullptr;
  EXPECT_EQ(cudaStreamCreateWithFlags(&s, flags), cudaSuccess);
  return s;
}

cudaStreamCaptureStatus capture_status(cudaStream_t s) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusInvalidated;
  EXPECT_EQ(cudaStreamIsCapturing(s, &status), cudaSuccess);
  return status;
}

// Ends the capture on s and expects it invalidated: an error and no graph.
void expect_invalidated_end(cudaStream_t s) {
  EXPECT_EQ(capture_status(s), cudaStreamCaptureStatusInvalidated);
  cudaGraph_t graph = reinterpret_cast<cudaGraph_t>(uintptr_t{1});
  EXPECT_EQ(cudaStreamEndCapture(s, &graph), cudaErrorStreamCaptureInvalidated);
  EXPECT_EQ(graph, nullptr);
  EXPECT_EQ(capture_status(s), cudaStreamCaptureStatusNone);
  (void)cudaGetLastError();
}

TEST_F(Cudasim, GraphLaunchRunsTheCapturedWorkEachTime) {
  cudaStream_t s = new_stream();
  float* a = device_alloc<float>(4);
  float* b = device_alloc<float>(4);
  int* counter = device_copy(std::vector<int>{0});
  void* pinned = nullptr;
  ASSERT_EQ(cudaMallocHost(&pinned, 4 * sizeof(float)), cudaSuccess);
  auto* out = static_cast<float*>(pinned);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const cudasim::Stats before = cudasim::stats();

  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  EXPECT_EQ(capture_status(s), cudaStreamCaptureStatusActive);
  float value = 2.0f;
  ASSERT_EQ(cudaMemsetAsync(a, 0, 4 * sizeof(float), s), cudaSuccess);
  cudasim::launch(fill_kernel, "fill_kernel", {1, 32, 0, s})(a, value, 3);  // a = 2 2 2 0
  ASSERT_EQ(cudaMemcpyAsync(b, a, 4 * sizeof(float), cudaMemcpyDeviceToDevice, s), cudaSuccess);
  cudasim::launch(increment_kernel, "increment_kernel", {1, 1, 0, s})(counter);
  ASSERT_EQ(cudaMemcpyAsync(out, b, 4 * sizeof(float), cudaMemcpyDeviceToHost, s), cudaSuccess);
  value = 5.0f;  // the graph keeps the argument the launch was captured with
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess);
  ASSERT_NE(graph, nullptr);
  EXPECT_EQ(capture_status(s), cudaStreamCaptureStatusNone);
  // Recorded, not run.
  EXPECT_EQ(host_copy(counter, 1)[0], 0);
  EXPECT_TRUE(std::isnan(host_copy(b, 1)[0]));
  EXPECT_TRUE(std::isnan(out[0]));

  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  ASSERT_EQ(cudaGraphDestroy(graph), cudaSuccess);  // the executable graph is a snapshot
  for (int i = 0; i < 3; ++i) ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
  EXPECT_TRUE(std::isnan(out[0])) << "the copy into pinned memory lands when the host waits, not before";
  ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  EXPECT_EQ(host_copy(counter, 1)[0], 3) << "each launch runs the graph once";
  const std::vector<float> expected = {2, 2, 2, 0};  // memset, then fill, then the copies, in that order
  EXPECT_EQ(host_copy(b, 4), expected);
  EXPECT_EQ(std::vector<float>(out, out + 4), expected);

  const cudasim::Stats after = cudasim::stats();
  EXPECT_EQ(after.launches, before.launches) << "captured kernels are recorded, not queued";
  EXPECT_EQ(after.captures_begun - before.captures_begun, 1u);
  EXPECT_EQ(after.captures_ended - before.captures_ended, 1u);
  EXPECT_EQ(after.graph_launches - before.graph_launches, 3u);
  EXPECT_EQ(after.objects - before.objects, 2u);  // the graph and the executable graph
  EXPECT_EQ(after.mallocs, before.mallocs);

  // The same sequence uncaptured gives the same result.
  float* c = device_alloc<float>(4);
  ASSERT_EQ(cudaMemsetAsync(a, 0, 4 * sizeof(float), s), cudaSuccess);
  cudasim::launch(fill_kernel, "fill_kernel", {1, 32, 0, s})(a, 2.0f, 3);
  ASSERT_EQ(cudaMemcpyAsync(c, a, 4 * sizeof(float), cudaMemcpyDeviceToDevice, s), cudaSuccess);
  EXPECT_EQ(host_copy(c, 4), host_copy(b, 4));

  EXPECT_EQ(cudaGraphExecDestroy(exec), cudaSuccess);
  EXPECT_EQ(cudaGraphExecDestroy(exec), cudaErrorInvalidValue);
  (void)cudaGetLastError();
  EXPECT_EQ(cudaStreamDestroy(s), cudaSuccess);
  EXPECT_EQ(cudaFreeHost(pinned), cudaSuccess);
  for (void* p : {static_cast<void*>(a), static_cast<void*>(b), static_cast<void*>(c), static_cast<void*>(counter)})
    EXPECT_EQ(cudaFree(p), cudaSuccess);
}

// CUDA programming guide, "Prohibited and Unhandled Operations": waiting for
// a capturing stream, the device, or an event recorded in the capture is
// invalid; the capture is invalidated ("Invalidation"), and ending it returns
// an error and a null graph. Nothing it recorded runs.
TEST_F(Cudasim, HostWaitInsideACaptureInvalidatesIt) {
  cudaStream_t s = new_stream();
  float* a = device_copy(std::vector<float>{1, 1, 1, 1});
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);

  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  ASSERT_EQ(cudaMemsetAsync(a, 0, 4 * sizeof(float), s), cudaSuccess);
  EXPECT_EQ(cudaStreamSynchronize(s), cudaErrorStreamCaptureUnsupported);
  EXPECT_EQ(cudaGetLastError(), cudaErrorStreamCaptureUnsupported);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);  // not sticky
  EXPECT_EQ(capture_status(s), cudaStreamCaptureStatusInvalidated);
  // Any further use of the stream fails until the capture is ended.
  EXPECT_EQ(cudaMemsetAsync(a, 0, 4 * sizeof(float), s), cudaErrorStreamCaptureInvalidated);
  cudasim::launch(fill_kernel, "fill_kernel", {1, 32, 0, s})(a, 3.0f, 4);
  EXPECT_EQ(cudaGetLastError(), cudaErrorStreamCaptureInvalidated);
  expect_invalidated_end(s);
  EXPECT_EQ(cudaStreamSynchronize(s), cudaSuccess);  // out of capture, usable again
  EXPECT_EQ(host_copy(a, 4), std::vector<float>(4, 1.0f)) << "an invalidated capture ran";

  // Waiting for the device.
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed), cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorStreamCaptureUnsupported);
  expect_invalidated_end(s);

  // Waiting for an event recorded in the capture (which made no node).
  cudaEvent_t e = nullptr;
  ASSERT_EQ(cudaEventCreate(&e), cudaSuccess);
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  ASSERT_EQ(cudaEventRecord(e, s), cudaSuccess);
  EXPECT_EQ(cudaEventSynchronize(e), cudaErrorCapturedEvent);
  expect_invalidated_end(s);
  ASSERT_EQ(cudaEventRecord(e, s), cudaSuccess);  // recorded outside a capture again: usable
  EXPECT_EQ(cudaEventSynchronize(e), cudaSuccess);

  // A copy to pageable host memory on another stream is a host wait, which a
  // global capture bars (on the capturing stream it would be recorded).
  std::vector<float> host(4, 0.0f);
  cudaStream_t other = new_stream();
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  EXPECT_EQ(cudaMemcpyAsync(host.data(), a, 4 * sizeof(float), cudaMemcpyDeviceToHost, other),
            cudaErrorStreamCaptureUnsupported);
  expect_invalidated_end(s);

  EXPECT_EQ(cudaEventDestroy(e), cudaSuccess);
  EXPECT_EQ(cudaStreamDestroy(other), cudaSuccess);
  EXPECT_EQ(cudaStreamDestroy(s), cudaSuccess);
  EXPECT_EQ(cudaFree(a), cudaSuccess);
}

// cudaThreadExchangeStreamCaptureMode: cudaMalloc (not enqueued, so not seen
// by the capture) is unsafe during a global-mode capture, from any thread, or
// during the calling thread's own thread-local capture; relaxed mode allows it.
TEST_F(Cudasim, AllocationInsideACaptureInvalidatesItUnlessRelaxed) {
  cudaStream_t s = new_stream();
  float* d = device_alloc<float>(4);
  const uint64_t mallocs = cudasim::stats().mallocs, pinned = cudasim::stats().pinned_mallocs;

  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  ASSERT_EQ(cudaMemsetAsync(d, 0, 4 * sizeof(float), s), cudaSuccess);
  void* p = &p;
  EXPECT_EQ(cudaMalloc(&p, 16), cudaErrorStreamCaptureUnsupported);
  EXPECT_EQ(p, nullptr);
  EXPECT_EQ(cudasim::stats().mallocs, mallocs);
  expect_invalidated_end(s);
  EXPECT_TRUE(std::isnan(host_copy(d, 1)[0])) << "the recorded memset ran";

  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  EXPECT_EQ(cudaMallocHost(&p, 16), cudaErrorStreamCaptureUnsupported);
  EXPECT_EQ(cudasim::stats().pinned_mallocs, pinned);
  expect_invalidated_end(s);

  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  EXPECT_EQ(cudaFree(d), cudaErrorStreamCaptureUnsupported);  // d stays allocated
  expect_invalidated_end(s);

  // A global capture bars other threads too; a thread-local one only its own.
  cudaError_t from_other_thread = cudaSuccess;
  void* q = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  std::thread([&] { from_other_thread = cudaMalloc(&q, 16); }).join();
  EXPECT_EQ(from_other_thread, cudaErrorStreamCaptureUnsupported);
  expect_invalidated_end(s);
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  std::thread([&] { from_other_thread = cudaMalloc(&q, 16); }).join();
  EXPECT_EQ(from_other_thread, cudaSuccess);
  EXPECT_EQ(capture_status(s), cudaStreamCaptureStatusActive);
  EXPECT_EQ(cudaMalloc(&p, 16), cudaErrorStreamCaptureUnsupported);
  expect_invalidated_end(s);

  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed), cudaSuccess);
  EXPECT_EQ(cudaMalloc(&p, 16), cudaSuccess);
  EXPECT_EQ(cudaFree(p), cudaSuccess);
  cudaGraph_t graph = nullptr;
  EXPECT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess);
  EXPECT_EQ(cudaGraphDestroy(graph), cudaSuccess);

  EXPECT_EQ(cudaFree(q), cudaSuccess);
  EXPECT_EQ(cudaFree(d), cudaSuccess);
  EXPECT_EQ(cudaStreamDestroy(s), cudaSuccess);
}

TEST_F(Cudasim, CaptureBeginsAndEndsAsCudaRequires) {
  cudaStream_t s = new_stream();
  cudaGraph_t graph = nullptr;
  // "Capture may not be initiated if stream is cudaStreamLegacy."
  EXPECT_EQ(cudaStreamBeginCapture(nullptr, cudaStreamCaptureModeGlobal), cudaErrorStreamCaptureUnsupported);
  EXPECT_EQ(cudaStreamEndCapture(s, &graph), cudaErrorIllegalState);  // not capturing
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  EXPECT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaErrorIllegalState);  // already
  // Not relaxed: cudaStreamEndCapture must come from the thread that began it.
  cudaError_t from_other_thread = cudaSuccess;
  std::thread([&] { from_other_thread = cudaStreamEndCapture(s, &graph); }).join();
  EXPECT_EQ(from_other_thread, cudaErrorStreamCaptureWrongThread);
  EXPECT_EQ(capture_status(s), cudaStreamCaptureStatusActive);
  ASSERT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess);
  EXPECT_EQ(cudaGraphDestroy(graph), cudaSuccess);
  EXPECT_EQ(cudaGraphDestroy(graph), cudaErrorInvalidValue);
  (void)cudaGetLastError();

  // The legacy stream encompasses blocking streams: while one captures,
  // asking the legacy stream's status is an error (the capture goes on), and
  // using it invalidates the capture. A non-blocking capture leaves it usable.
  cudaStream_t blocking = new_stream(cudaStreamDefault);
  float* d = device_alloc<float>(4);
  ASSERT_EQ(cudaStreamBeginCapture(blocking, cudaStreamCaptureModeGlobal), cudaSuccess);
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  EXPECT_EQ(cudaStreamIsCapturing(nullptr, &status), cudaErrorStreamCaptureImplicit);
  EXPECT_EQ(capture_status(blocking), cudaStreamCaptureStatusActive);
  EXPECT_EQ(cudaMemsetAsync(d, 0, 16, nullptr), cudaErrorStreamCaptureImplicit);
  expect_invalidated_end(blocking);
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  EXPECT_EQ(cudaStreamIsCapturing(nullptr, &status), cudaSuccess);
  EXPECT_EQ(status, cudaStreamCaptureStatusNone);
  EXPECT_EQ(cudaMemsetAsync(d, 0, 16, nullptr), cudaSuccess);
  ASSERT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess);
  EXPECT_EQ(cudaGraphDestroy(graph), cudaSuccess);
  EXPECT_EQ(host_copy(d, 4), std::vector<float>(4, 0.0f));

  EXPECT_EQ(cudaFree(d), cudaSuccess);
  EXPECT_EQ(cudaStreamDestroy(blocking), cudaSuccess);
  EXPECT_EQ(cudaStreamDestroy(s), cudaSuccess);
}

// Library calls go through the same stream: a capture records them with the
// scalars they were called with.
TEST_F(Cudasim, CapturedLibraryCallRunsOnEachLaunch) {
  cudaStream_t s = new_stream();
  float* a = device_copy(std::vector<float>{1, 2, 3, 4});  // 2x2, column-major
  float* c = device_copy(std::vector<float>(4, 0.0f));
  cublasHandle_t h = nullptr;
  ASSERT_EQ(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasSetStream(h, s), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  float one = 1.0f;
  ASSERT_EQ(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, a, 2, a, 2, &one, c, 2), CUBLAS_STATUS_SUCCESS);
  one = 100.0f;  // alpha and beta are read at the call, as cuBLAS's host pointer mode does
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess);
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph), cudaSuccess);
  EXPECT_EQ(host_copy(c, 4), std::vector<float>(4, 0.0f));
  ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  // C += A*A twice; A*A = [7 15; 10 22] column-major.
  EXPECT_EQ(host_copy(c, 4), (std::vector<float>{14, 20, 30, 44}));
  EXPECT_EQ(cudaGraphExecDestroy(exec), cudaSuccess);
  EXPECT_EQ(cudaGraphDestroy(graph), cudaSuccess);
  EXPECT_EQ(cublasDestroy(h), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cudaStreamDestroy(s), cudaSuccess);
  EXPECT_EQ(cudaFree(a), cudaSuccess);
  EXPECT_EQ(cudaFree(c), cudaSuccess);
}

// CUDASIM_TRACE=1: a captured operation is named "captured", and a graph
// launch is one queued operation, so counting "queued" counts what runs.
TEST_F(Cudasim, TraceNamesCapturedOperationsApartFromQueuedOnes) {
  cudaStream_t s = new_stream();
  float* d = device_alloc<float>(4);
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  ::testing::internal::CaptureStderr();
  {
    const ScopedEnv trace("CUDASIM_TRACE", "1");
    ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
    ASSERT_EQ(cudaMemsetAsync(d, 0, 4 * sizeof(float), s), cudaSuccess);
    cudasim::launch(fill_kernel, "fill_kernel", {1, 32, 0, s})(d, 3.0f, 4);
    ASSERT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess);
    ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
    ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);  // running prints nothing
  }
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(log,
            "cudasim: captured cudaMemsetAsync\ncudasim: captured fill_kernel\n"
            "cudasim: queued cudaGraphLaunch\ncudasim: queued cudaGraphLaunch\n");
  EXPECT_EQ(host_copy(d, 4), std::vector<float>(4, 3.0f));
  EXPECT_EQ(cudaGraphExecDestroy(exec), cudaSuccess);
  EXPECT_EQ(cudaGraphDestroy(graph), cudaSuccess);
  EXPECT_EQ(cudaStreamDestroy(s), cudaSuccess);
  EXPECT_EQ(cudaFree(d), cudaSuccess);
}

// Pinned memory makes a copy fully asynchronous (CUDA's API synchronization
// behavior): the host must wait for the stream before it reads the result.
TEST_F(Cudasim, CopiesToPinnedMemoryAreAsynchronous) {
  cudaStream_t s = new_stream();
  float* d = device_copy(std::vector<float>{1, 2, 3, 4});
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const cudasim::Stats before = cudasim::stats();
  void* p = nullptr;
  ASSERT_EQ(cudaMallocHost(&p, 4 * sizeof(float)), cudaSuccess);
  EXPECT_EQ(cudasim::stats().pinned_mallocs - before.pinned_mallocs, 1u);
  EXPECT_EQ(cudasim::stats().mallocs, before.mallocs);
  auto* h = static_cast<float*>(p);
  const auto* bytes = static_cast<const unsigned char*>(p);
  EXPECT_EQ(std::vector<unsigned char>(bytes, bytes + 16), std::vector<unsigned char>(16, 0xff)) << "garbage, as CUDA";

  ASSERT_EQ(cudaMemcpyAsync(h, d, 4 * sizeof(float), cudaMemcpyDeviceToHost, s), cudaSuccess);
  EXPECT_TRUE(std::isnan(h[0])) << "read before the host waited for the stream";
  EXPECT_EQ(cudasim::stats().host_waits, before.host_waits) << "an implicit wait";
  ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  EXPECT_EQ(std::vector<float>(h, h + 4), (std::vector<float>{1, 2, 3, 4}));
  // From pinned memory a copy reads the source when it runs, not at the call
  // (on a GPU, writing it before the copy is done is a race).
  h[0] = 7.0f;
  ASSERT_EQ(cudaMemcpyAsync(d, h, sizeof(float), cudaMemcpyHostToDevice, s), cudaSuccess);
  h[0] = 8.0f;
  ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  EXPECT_EQ(host_copy(d, 1)[0], 8.0f);
  // To pageable memory it has completed when it returns.
  std::vector<float> pageable(4, 0.0f);
  ASSERT_EQ(cudaMemcpyAsync(pageable.data(), d, 4 * sizeof(float), cudaMemcpyDeviceToHost, s), cudaSuccess);
  EXPECT_EQ(pageable, (std::vector<float>{8, 2, 3, 4}));

  // cudaFreeHost frees cudaMallocHost blocks only; cudaFree does not take them.
  EXPECT_EQ(cudaFree(h), cudaErrorInvalidValue);
  EXPECT_EQ(cudaFreeHost(d), cudaErrorInvalidValue);
  EXPECT_EQ(cudaFreeHost(pageable.data()), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  EXPECT_EQ(cudaFreeHost(h), cudaSuccess);
  EXPECT_EQ(cudaFreeHost(h), cudaErrorInvalidValue);
  (void)cudaGetLastError();
  EXPECT_EQ(cudaStreamDestroy(s), cudaSuccess);
  EXPECT_EQ(cudaFree(d), cudaSuccess);
}

TEST_F(Cudasim, PinnedPointerKernelArgumentIsAnIllegalAddress) {
  void* p = nullptr;
  ASSERT_EQ(cudaMallocHost(&p, 8 * sizeof(float)), cudaSuccess);
  cudasim::launch(fill_kernel, "fill_kernel", {1, 32})(static_cast<float*>(p), 1.0f, 8);
  EXPECT_EQ(cudaStreamSynchronize(nullptr), cudaErrorIllegalAddress);  // mapped memory is not simulated
  EXPECT_TRUE(std::isnan(static_cast<float*>(p)[0]));  // the kernel never ran
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

// cublasSgemmStridedBatched as documented: instance i multiplies the
// matrices at A + i * strideA, B + i * strideB into C + i * strideC, every
// instance with the same m, n, k, leading dimensions and transposes. Here the
// instances interleave as gcn-train's column blocks do (leading dimension 4,
// stride 2): column-major A is stored 1 2 5 6 | 3 4 7 8, so A0 = [1 3; 2 4]
// and A1 = [5 7; 6 8]; B0 = [1; 1], B1 = [1; -1] one after another.
TEST_F(Cudasim, SgemmStridedBatchedMultipliesEachInstance) {
  float* a = device_copy(std::vector<float>{1, 2, 5, 6, 3, 4, 7, 8});
  float* b = device_copy(std::vector<float>{1, 1, 1, -1});
  float* c = device_copy(std::vector<float>(4, NAN));  // beta = 0: C is never read
  cublasHandle_t h = nullptr;
  ASSERT_EQ(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
  const float one = 1.0f, two = 2.0f, zero = 0.0f;
  // C0 = A0 B0 = [4; 6] at 0, C1 = A1 B1 = [-2; -2] at 2 (ldc 4).
  ASSERT_EQ(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 1, 2, &one, a, 4, 2, b, 2, 2, &zero, c, 4, 2, 2),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(host_copy(c, 4), (std::vector<float>{4, 6, -2, -2}));
  // alpha and beta: C = 2 A B + C.
  ASSERT_EQ(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 1, 2, &two, a, 4, 2, b, 2, 2, &one, c, 4, 2, 2),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(host_copy(c, 4), (std::vector<float>{12, 18, -6, -6}));
  // A transposed: A0ᵀ B0 = [3; 7], A1ᵀ B1 = [-1; -1].
  ASSERT_EQ(cublasSgemmStridedBatched(h, CUBLAS_OP_T, CUBLAS_OP_N, 2, 1, 2, &one, a, 4, 2, b, 2, 2, &zero, c, 4, 2, 2),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(host_copy(c, 4), (std::vector<float>{3, 7, -1, -1}));
  // One instance is cublasSgemm's product; none writes nothing.
  ASSERT_EQ(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 1, 2, &one, a + 2, 4, 2, b + 2, 2, 2, &zero, c,
                                      4, 2, 1),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(host_copy(c, 4), (std::vector<float>{-2, -2, -1, -1}));
  EXPECT_EQ(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 1, 2, &one, a, 4, 2, b, 2, 2, &zero, c, 4, 2, 0),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(host_copy(c, 4), (std::vector<float>{-2, -2, -1, -1}));
  // A negative batch count and a leading dimension below the rows are refused.
  EXPECT_EQ(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 1, 2, &one, a, 4, 2, b, 2, 2, &zero, c, 4, 2, -1),
            CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 1, 2, &one, a, 1, 2, b, 2, 2, &zero, c, 4, 2, 2),
            CUBLAS_STATUS_INVALID_VALUE);
  // An instance past the allocation (the second A at stride 4) is an illegal address.
  EXPECT_EQ(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 1, 2, &one, a, 4, 4, b, 2, 2, &zero, c, 4, 2, 2),
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
  // NOT_SUPPORTED (documented) and INVALID_VALUE (what some algorithms
  // answer for a row-major B) both send the product to our kernel.
  for (const char* refusal : {"1", "invalid"}) {
    const ScopedEnv refuse("CUDASIM_SPMM_NOT_SUPPORTED", refusal);
    auto gpu = gcn::make_cuda_backend(0);
    // Our kernel rounds as the CPU does (no FMA), and sums in the same order.
    EXPECT_TRUE(gcn::test::all_equal(run(*gpu), ref)) << refusal;
  }
}

}  // namespace

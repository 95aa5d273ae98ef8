// Element-wise ops. ReLU and dropout are fused: one read of the pre-activation
// and one write, the keep decision recomputed from the counter-based RNG
// (gcn/rng.hpp) instead of storing a mask, and the backward needs only the
// forward output y (y > 0 exactly where the input was positive and kept).
#include <cuda_runtime.h>

#include <algorithm>

#include "check.hpp"
#include "elementwise.hpp"
#include "gcn/rng.hpp"

namespace gcn::kernels {
namespace {

constexpr int kBlock = 256;
constexpr int64_t kMaxBlocks = 1 << 16;  // grid-stride beyond this

unsigned blocks_for(int64_t n) { return static_cast<unsigned>(std::min<int64_t>((n + kBlock - 1) / kBlock, kMaxBlocks)); }

static __global__ void add_bias_kernel(float* __restrict__ x,           // (rows, cols)
                                       const float* __restrict__ bias,  // (cols)
                                       int64_t n, int64_t cols) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] += bias[i % cols];
}

static __global__ void relu_dropout_forward_kernel(const float* x,  // (n)
                                                   float* y,        // (n), may alias x
                                                   int64_t n, float p, float scale, uint64_t seed,
                                                   uint64_t rng_stream) {
  const uint64_t key = stream_key(seed, rng_stream);
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = x[i] > 0.0f ? x[i] : 0.0f;
    if (p <= 0.0f) {
      y[i] = v;
    } else {
      y[i] = dropout_keep_keyed(key, static_cast<uint64_t>(i), p) ? v * scale : 0.0f;
    }
  }
}

static __global__ void relu_dropout_backward_kernel(const float* dy,  // (n)
                                                    const float* y,   // (n) forward output
                                                    float* dx,        // (n), may alias dy
                                                    int64_t n, float scale) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dx[i] = y[i] > 0.0f ? dy[i] * scale : 0.0f;
}

}  // namespace

void launch_add_bias(float* x, const float* bias, int64_t rows, int64_t cols, cudaStream_t stream) {
  const int64_t n = rows * cols;
  if (n <= 0) return;
  add_bias_kernel<<<blocks_for(n), kBlock, 0, stream>>>(x, bias, n, cols);
  GCN_CHECK_LAUNCH("add_bias_kernel");
}

void launch_relu_dropout_forward(const float* x, float* y, int64_t n, float p, uint64_t seed,
                                 uint64_t rng_stream, cudaStream_t stream) {
  if (n <= 0) return;
  // p >= 1 keeps nothing (uniform01 < 1 <= p), so the scale is never used.
  const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  relu_dropout_forward_kernel<<<blocks_for(n), kBlock, 0, stream>>>(x, y, n, p, scale, seed, rng_stream);
  GCN_CHECK_LAUNCH("relu_dropout_forward_kernel");
}

void launch_relu_dropout_backward(const float* dy, const float* y, float* dx, int64_t n, float p,
                                  cudaStream_t stream) {
  if (n <= 0) return;
  // Multiplied by 1 / (1 - p) like the CPU reference; p >= 1 leaves every y
  // at 0, so the scale is never used.
  const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  relu_dropout_backward_kernel<<<blocks_for(n), kBlock, 0, stream>>>(dy, y, dx, n, scale);
  GCN_CHECK_LAUNCH("relu_dropout_backward_kernel");
}

}  // namespace gcn::kernels

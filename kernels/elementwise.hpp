// Launchers for the element-wise ops: bias add and the fused ReLU + dropout
// (forward and backward). Row-major device memory, enqueued on `stream`.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace gcn::kernels {

// x (rows, cols) += bias (cols) on every row.
void launch_add_bias(float* x, const float* bias, int64_t rows, int64_t cols, cudaStream_t stream);

// y (n) = dropout(relu(x (n))); y may alias x. Element i is kept iff
// gcn::dropout_keep(seed, rng_stream, i, p) and kept values are scaled by
// 1 / (1 - p); p <= 0 is a plain ReLU, p >= 1 zeroes everything.
void launch_relu_dropout_forward(const float* x, float* y, int64_t n, float p, uint64_t seed,
                                 uint64_t rng_stream, cudaStream_t stream);

// dx (n) = dy * (1 / (1 - p)) where y > 0, else 0; dx may alias dy.
void launch_relu_dropout_backward(const float* dy, const float* y, float* dx, int64_t n, float p,
                                  cudaStream_t stream);

}  // namespace gcn::kernels

// Launchers for the element-wise ops: the preparation of products' outputs,
// the fused ReLU + dropout (forward; backward with the column sums of its
// result) and the conditional copy of the best weights. Row-major device
// memory, enqueued on `stream`.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "gcn/step_state.hpp"

namespace gcn::kernels {

// Up to 8 outputs filled in one launch: c (rows, cols) = 0, or bias (cols) on
// every row when bias is not null.
struct OutputFill {
  float* c;
  const float* bias;
  int64_t rows, cols;
};
struct OutputFills {
  OutputFill item[8];
  int count;
};
void launch_fill_outputs(const OutputFills& fills, cudaStream_t stream);

// y (n) = dropout(relu(x (n))); y must not alias x. With p > 0 element i is
// kept iff gcn::dropout_keep(step->dropout_seed, step->epoch + 1, i, p)
// (read on the device) and kept values are scaled by 1 / (1 - p); p <= 0 is
// a plain ReLU (step unused, may be null).
void launch_relu_dropout_forward(const float* x, float* y, int64_t n, float p, const StepState* step,
                                 cudaStream_t stream);

// Scratch (doubles) launch_relu_dropout_backward needs for column sums of a
// (rows, cols) matrix.
int64_t relu_dropout_backward_scratch(int64_t rows, int64_t cols);
// dx (rows, cols) = dy * (1 / (1 - p)) where y > 0, else 0; dx may alias dy.
// col_sums (cols), when not null, receives the column sums of dx in a fixed
// order (partial: relu_dropout_backward_scratch doubles; counter: one
// unsigned that is zero and is left at zero).
void launch_relu_dropout_backward(const float* dy, const float* y, float* dx, int64_t rows, int64_t cols, float p,
                                  float* col_sums, double* partial, unsigned* counter, cudaStream_t stream);

// dst = src (bytes) when step->improved is set.
void launch_copy_if_improved(void* dst, const void* src, std::size_t bytes, const StepState* step,
                             cudaStream_t stream);

}  // namespace gcn::kernels

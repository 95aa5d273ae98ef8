// Launcher for the column sum (the bias gradient), deterministic: a fixed
// partition of the rows into chunks and a fixed summation order.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace gcn::kernels {

// Number of doubles of scratch launch_column_sum needs for a (rows, cols) input.
int64_t column_sum_scratch(int64_t rows, int64_t cols);

// out (cols) = sum over the rows of x (rows, cols). partial: scratch of
// column_sum_scratch(rows, cols) doubles.
void launch_column_sum(const float* x, int64_t rows, int64_t cols, float* out, double* partial,
                       cudaStream_t stream);

}  // namespace gcn::kernels

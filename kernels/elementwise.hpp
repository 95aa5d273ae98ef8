// Launchers for the element-wise ops: the preparation of products' outputs,
// the fused activation (ReLU, ELU) + dropout (forward; backward with the
// column sums of its result), for one model or a batch, and the conditional
// copy of the best weights. Row-major device memory, enqueued on `stream`.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "gcn/backend/step_state.hpp"
#include "batch.hpp"

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

// The activations of the fused activation + dropout (gcn::Activation's
// values).
constexpr int kActRelu = 0;  // max(x, 0)
constexpr int kActElu = 1;   // x > 0 ? x : gcn::elu_expm1(x)

// A batch of models (gcn::Backend's column blocks): model k of `batch` owns
// the columns [k · cols / batch, (k + 1) · cols / batch) of every row. With
// rates_from_steps model k's dropout rate p_k is steps[k].dropout (read on
// the device); otherwise every model's rate is p. Model k's mask is
// keyed by site_seed(steps[k].dropout_seed, site) and steps[k].epoch + 1
// (gcn/rng.hpp); the element index of the dropout stream is the index within
// the model's own (rows, cols / batch) tensor. steps may be null when no
// model drops (p <= 0 and not rates_from_steps). At most kMaxBatch models.

// y (rows, cols) = dropout(act(x)); y must not alias x. With p_k > 0
// element i of model k is kept iff gcn::dropout_keep(site seed, epoch + 1,
// i, p_k), kept values scaled by 1 / (1 - p_k); p_k <= 0 is the plain
// activation.
void launch_act_dropout_forward(int act, const float* x, float* y, int64_t rows, int64_t cols, int batch, float p,
                                const StepState* steps, bool rates_from_steps, uint32_t site, cudaStream_t stream);

// Scratch (doubles) launch_act_dropout_backward needs for column sums of a
// (rows, cols) matrix.
int64_t relu_dropout_backward_scratch(int64_t rows, int64_t cols);
// dx (rows, cols) = dy · act'(x) · (1 / (1 - p_k)) where kept, else 0; dx may
// alias dy. ReLU: kept and x > 0 is y > 0 (no mask needed, nor steps
// unless rates_from_steps). ELU: the mask recomputed, act'(x) = 1 where
// y > 0, else y · (1 - p_k) + 1. col_sums (cols), when not null, receives
// the column sums of dx in a fixed order that depends only on rows and
// cols / batch, so each model's sums are the bits of the same model alone
// (partial: relu_dropout_backward_scratch doubles; counter: one unsigned
// that is zero and is left at zero).
void launch_act_dropout_backward(int act, const float* dy, const float* y, float* dx, int64_t rows, int64_t cols,
                                 int batch, float p, const StepState* steps, bool rates_from_steps, uint32_t site,
                                 float* col_sums, double* partial, unsigned* counter, cudaStream_t stream);

// dst = src (bytes) when step->improved is set.
void launch_copy_if_improved(void* dst, const void* src, std::size_t bytes, const StepState* step,
                             cudaStream_t stream);

// dst = src over model k's columns of every region when steps[k].improved
// (a batch of models; batch.hpp).
void launch_batch_copy_if_improved(float* dst, const float* src, const ParamRegions& regions, const StepState* steps,
                                   int batch, cudaStream_t stream);

}  // namespace gcn::kernels

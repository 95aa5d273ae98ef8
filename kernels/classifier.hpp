// Launchers for the classifier head: log_softmax; the training loss (fused
// log_softmax + NLL with its gradient and the column sums of the gradient);
// the evaluation of an epoch (validation loss, argmax and correct counts,
// the best-epoch selection); and the unfused NLL gcn-bench compares with.
// Tensors are row-major device memory; every launcher enqueues on `stream`
// and returns at once.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "batch.hpp"
#include "gcn/backend/step_state.hpp"

namespace gcn::kernels {

// y (rows, cols) = log_softmax(x (rows, cols)) per row; y may alias x.
void launch_log_softmax(const float* x, float* y, int64_t rows, int64_t cols, cudaStream_t stream);

// A batch of models (batch.hpp): logits and grad are (rows, batch · cols)
// with model k's classes the columns [k · cols, (k + 1) · cols), bias_grad
// (batch · cols) likewise; model k's step state is steps[k] and its figures
// of epoch e0 + 1 (e0 = steps[k].epoch before it advances) go to
// ring[gcn::ring_index(ring_size, e0, k, batch)]. Each model is reduced by
// its own blocks (blockIdx.y) in the order one model alone is, so its
// figures are the bits the same launch with batch 1 gives its block. A
// stopped model gets nothing written. At most kMaxBatch models.

// Scratch (doubles) launch_classifier_loss and launch_evaluate need.
int64_t classifier_scratch(int64_t rows, int64_t cols, int batch);

// Over the rows r with (split[r] & mask_bit), n_masked of them, for each model:
//   its slot's .loss = sum_r -log_softmax(logits)[r, labels[r]] / n_masked (0 when n_masked == 0)
//   grad = (softmax - onehot) / n_masked on masked rows, 0 on the others (may be null)
//   bias_grad = the column sums of grad (may be null; needs grad)
// partial: classifier_scratch doubles; counters: batch unsigneds that are
// zero and are left at zero. A masked row with a label outside [0, cols)
// makes the loss NaN.
void launch_classifier_loss(const float* logits, const int32_t* labels, const uint8_t* split, uint8_t mask_bit,
                            int64_t n_masked, int64_t rows, int64_t cols, int batch, float* grad, float* bias_grad,
                            const StepState* steps, EpochMetrics* ring, int32_t ring_size, double* partial,
                            unsigned* counters, cudaStream_t stream);

// Backend::evaluate, for each model: into its slot the validation loss (over
// the kValBit rows, n_val of them), the correct predictions per split bit
// (argmax: the first maximum, or the first NaN) and the epoch; then
// select_epoch(steps[k], slot, advance, ring, k, batch) (the ring's earlier
// epochs for early stopping).
void launch_evaluate(const float* logits, const int32_t* labels, const uint8_t* split, int64_t n_val, int64_t rows,
                     int64_t cols, int batch, StepState* steps, EpochMetrics* ring, int32_t ring_size, bool advance,
                     double* partial, unsigned* counters, cudaStream_t stream);

// The unfused baseline: the loss and gradient of launch_classifier_loss from
// log_probs = log_softmax(logits), into *loss_out. row_loss (rows) is scratch.
void launch_nll_loss(const float* log_probs, const int32_t* labels, const uint8_t* split, uint8_t mask_bit,
                     int64_t n_masked, int64_t rows, int64_t cols, float* row_loss, float* loss_out, float* grad,
                     cudaStream_t stream);

}  // namespace gcn::kernels

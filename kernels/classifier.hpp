// Launchers for the classifier head: log_softmax; the training loss (fused
// log_softmax + NLL with its gradient and the column sums of the gradient);
// the evaluation of an epoch (validation loss, argmax and correct counts,
// the best-epoch selection); and the unfused NLL gcn-bench compares with.
// Tensors are row-major device memory; every launcher enqueues on `stream`
// and returns at once.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "gcn/step_state.hpp"

namespace gcn::kernels {

// y (rows, cols) = log_softmax(x (rows, cols)) per row; y may alias x.
void launch_log_softmax(const float* x, float* y, int64_t rows, int64_t cols, cudaStream_t stream);

// Scratch (doubles) launch_classifier_loss and launch_evaluate need.
int64_t classifier_scratch(int64_t rows, int64_t cols);

// Over the rows r with (split[r] & mask_bit), n_masked of them:
//   ring[step->epoch % ring_size].loss = sum_r -log_softmax(logits)[r, labels[r]] / n_masked (0 when n_masked == 0)
//   grad (rows, cols) = (softmax - onehot) / n_masked on masked rows, 0 on the others (may be null)
//   bias_grad (cols) = the column sums of grad (may be null; needs grad)
// Nothing once step->stopped is set. partial: classifier_scratch doubles;
// counter: one unsigned that is zero and is left at zero. A masked row with a
// label outside [0, cols) makes the loss NaN.
void launch_classifier_loss(const float* logits, const int32_t* labels, const uint8_t* split, uint8_t mask_bit,
                            int64_t n_masked, int64_t rows, int64_t cols, float* grad, float* bias_grad,
                            const StepState* step, EpochMetrics* ring, int32_t ring_size, double* partial,
                            unsigned* counter, cudaStream_t stream);

// Backend::evaluate: into ring[step->epoch % ring_size] the validation loss
// (over the kValBit rows, n_val of them), the correct predictions per split
// bit (argmax: the first maximum, or the first NaN) and the epoch; then
// select_epoch(*step, slot, advance). Nothing once step->stopped is set.
void launch_evaluate(const float* logits, const int32_t* labels, const uint8_t* split, int64_t n_val, int64_t rows,
                     int64_t cols, StepState* step, EpochMetrics* ring, int32_t ring_size, bool advance,
                     double* partial, unsigned* counter, cudaStream_t stream);

// The unfused baseline: the loss and gradient of launch_classifier_loss from
// log_probs = log_softmax(logits), into *loss_out. row_loss (rows) is scratch.
void launch_nll_loss(const float* log_probs, const int32_t* labels, const uint8_t* split, uint8_t mask_bit,
                     int64_t n_masked, int64_t rows, int64_t cols, float* row_loss, float* loss_out, float* grad,
                     cudaStream_t stream);

}  // namespace gcn::kernels

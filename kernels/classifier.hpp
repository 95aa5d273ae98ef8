// Launchers for the classifier head: log_softmax, the fused log_softmax + NLL
// (loss and gradient) and argmax + correct counts. Tensors are row-major
// device memory; every launcher enqueues on `stream` and returns at once.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace gcn::kernels {

// y (rows, cols) = log_softmax(x (rows, cols)) per row; y may alias x.
void launch_log_softmax(const float* x, float* y, int64_t rows, int64_t cols, cudaStream_t stream);

// Over the rows r with (split[r] & mask_bit):
//   *loss_out = sum_r -log_softmax(logits)[r, labels[r]] / n_masked (0 when n_masked == 0)
//   grad (rows, cols) = (softmax - onehot) / n_masked on masked rows, 0 on the others
// row_loss (rows) is scratch for the per-row terms (reduced in a fixed order).
// grad may be null; it must not alias logits. A masked row with a label
// outside [0, cols) makes the loss NaN.
void launch_log_softmax_nll(const float* logits, const int32_t* labels, const uint8_t* split,
                            uint8_t mask_bit, int64_t n_masked, int64_t rows, int64_t cols,
                            float* row_loss, float* loss_out, float* grad, cudaStream_t stream);

// The unfused baseline: the same loss and gradient as launch_log_softmax_nll,
// from log_probs = log_softmax(logits) instead of the logits.
void launch_nll_loss(const float* log_probs, const int32_t* labels, const uint8_t* split, uint8_t mask_bit,
                     int64_t n_masked, int64_t rows, int64_t cols, float* row_loss, float* loss_out, float* grad,
                     cudaStream_t stream);

// pred (rows) = argmax per row (first maximum wins; may be null);
// correct_out (3) = for bits 0..2 of split, the rows with that bit set and
// argmax == label (integer counts, overwritten).
void launch_argmax_correct(const float* logits, const int32_t* labels, const uint8_t* split,
                           int64_t rows, int64_t cols, int32_t* pred, int32_t* correct_out,
                           cudaStream_t stream);

}  // namespace gcn::kernels
